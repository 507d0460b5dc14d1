"""Fixtures of the BFD tests: a namespace lab with FRR's bfdd available."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from ironlb.lab.netns import NetnsLab, netns_available
from tests.support.bfd_frr import frr_bfd_missing


@pytest.fixture
def bfd_lab() -> Iterator[NetnsLab]:
    reason = netns_available() or frr_bfd_missing()
    if reason:
        pytest.skip(reason)
    lab = NetnsLab(f"bfd{secrets.token_hex(2)}")
    try:
        yield lab
    finally:
        lab.cleanup()
