"""A LAN of three nodes running ``ironlb run`` (the ``lan`` fixture); the cluster and its checks are in
tests/support/standalone.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from ironlb.lab.lan import Lan, build_lan
from ironlb.lab.netns import NetnsLab, netns_available
from tests.support.standalone import NODES, SEED, SERVICE, VIP, Cluster

__all__ = ["NODES", "SEED", "SERVICE", "VIP", "Cluster", "lan"]


@pytest.fixture
def lan() -> Iterator[Lan]:
    reason = netns_available()
    if reason or shutil.which("arping") is None:
        pytest.skip(reason or "needs arping")
    lab = NetnsLab()
    try:
        yield build_lan(lab)
    finally:
        lab.cleanup()
