"""The lab's measurements on a real 3-node LAN: what the demo and ``bench/l2_failover.py`` rely on."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironlb.lab.cluster import VIP, StandaloneCluster
from ironlb.lab.failover import measure_failover, restore
from ironlb.lab.lan import build_lan, start_http_servers
from ironlb.lab.netns import NetnsLab, netns_available
from tests.support.announce import measure_announce
from tests.support.waits import wait_until

pytestmark = pytest.mark.netns


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[StandaloneCluster]:
    reason = netns_available()
    if reason or shutil.which("arping") is None:
        pytest.skip(reason or "needs arping")
    lab = NetnsLab()
    c: StandaloneCluster | None = None
    try:
        lan = build_lan(lab)
        start_http_servers(lan)
        c = StandaloneCluster(lan, tmp_path)
        c.apply_seed()
        c.start_all()
        yield c
    finally:
        if c is not None:
            c.close()
        lab.cleanup()


def test_failover_restore_and_announce(cluster: StandaloneCluster) -> None:
    owner = cluster.wait_steady(VIP, timeout=60)  # includes starting three ironlb run processes
    assert owner is not None
    assert cluster.http_get(VIP)["body"] == owner
    assert {mac for mac, _ in cluster.arping(VIP)} == {cluster.lan.node(owner).mac}

    with cluster.probe(VIP) as probe:
        assert probe.wait_ready()
        assert probe.wait_answer(owner, 0.0, 10) is not None
        result = measure_failover(cluster, probe)
        assert result.error is None, result
        assert result.dead == owner and result.new not in (None, owner)
        assert result.total_ms is not None and 0 < result.total_ms < 5000
        # The client moved because of the new node's gratuitous ARP, seen before its first answer.
        assert result.garp_ms is not None and result.garp_ms <= result.total_ms
        assert result.detect_ms is not None and result.detect_ms < result.total_ms + 50
        assert not cluster.running(owner)

        # Stateless election: back from the dead, the node takes the IP back and the client follows.
        assert restore(cluster, owner, probe)
        assert cluster.announcers(VIP) == [owner]

    announced = measure_announce(cluster, "extra", "192.168.1.245")
    assert announced.error is None, announced
    assert announced.arp_ms is not None and announced.arp_ms < 5000
    assert announced.node is not None and cluster.announcers("192.168.1.245") == [announced.node]
    cluster.remove_manifest("extra.yaml")
    wait_until(lambda: cluster.announcers("192.168.1.245") == [], 5, "cluster.announcers('192.168.1.245') == []")
