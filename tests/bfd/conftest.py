"""Fixtures of the BFD tests: a namespace lab with FRR's bfdd available."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from ironlb.lab.netns import NetnsLab
from tests.support.bfd_frr import frr_bfd_missing
from tests.support.netns import fresh_lab


@pytest.fixture
def bfd_lab() -> Iterator[NetnsLab]:
    with fresh_lab(frr_bfd_missing(), prefix=f"bfd{secrets.token_hex(2)}") as lab:
        yield lab
