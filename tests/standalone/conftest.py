"""A LAN of three nodes running ``ironlb run`` (the ``lan`` fixture); the cluster and its checks are in
tests/support/standalone.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from ironlb.lab.lan import Lan, build_lan
from tests.support.netns import fresh_lab
from tests.support.standalone import NODES, SEED, SERVICE, VIP, Cluster

__all__ = ["NODES", "SEED", "SERVICE", "VIP", "Cluster", "lan"]


@pytest.fixture
def lan() -> Iterator[Lan]:
    with fresh_lab(None if shutil.which("arping") else "needs arping") as lab:
        yield build_lan(lab)
