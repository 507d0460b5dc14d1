"""``ironlb run``'s membership and fast-path metrics, scraped from real nodes (the fast process in use, the
default): members alive, quorum, datagrams dropped by reason, the fast process's loop lag, and a member's death
seen as one more detection of at least the dead timeout.

The dead timeout is 1 s rather than 350 ms, as in test_fastpath_netns: a machine busy with other jobs must not
make a false death part of the count.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ironlb.lab.lan import Lan
from tests.support.waits import STARTING, wait_until

from .conftest import SEED, SERVICE, Cluster

pytestmark = pytest.mark.netns

DEAD_TIMEOUT = 1.0


Page = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Page:
    """Every sample of a /metrics page by (name, sorted labels)."""
    out: Page = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(page: Page, name: str, **labels: str) -> float | None:
    return page.get((name, tuple(sorted(labels.items()))))


def test_membership_and_fast_path_metrics_follow_a_member_death(lan: Lan, tmp_path: Path) -> None:
    c = Cluster(lan, tmp_path)
    c.ml_dead_timeout = DEAD_TIMEOUT
    (c.state / "config.yaml").write_text(SEED)
    (c.state / "service.yaml").write_text(SERVICE)
    for node in ("node1", "node2", "node3"):
        c.start(node)
    wait_until(c.converged, 60, "the three nodes to see each other alive")
    watcher = "node2"

    def scrape() -> Page:
        return samples(c.metrics(watcher))

    # The fast process reports every second: wait for a report that has the three members and some loop samples.
    def reported() -> Page | None:
        page = scrape()
        ok = (value(page, "ironlb_membership_alive_members") == 3
              and (value(page, "ironlb_fastpath_loop_lag_seconds_count") or 0) > 0)  # fmt: skip
        return page if ok else None

    page = wait_until(reported, 30, "node2's /metrics to show 3 alive members and the fast process's loop lag",
                      retry=STARTING)  # fmt: skip
    assert value(page, "ironlb_membership_members") == 3
    assert value(page, "ironlb_membership_quorum_bool") == 1
    assert value(page, "ironlb_membership_stalls_total") is not None
    assert value(page, "ironlb_fastpath_loop_lag_seconds_bucket", le="+Inf") == value(
        page, "ironlb_fastpath_loop_lag_seconds_count")
    before = value(page, "ironlb_membership_detection_seconds_count")
    assert before is not None
    early = value(page, "ironlb_membership_detection_seconds_bucket", le="0.75")  # below any possible detection
    assert early == 0

    # A datagram no membership message can be (1 byte) sent to node2's membership port is dropped and counted
    # (sent again at each look: UDP makes no promise).
    host = lan.node(watcher).ip
    junk = f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'y', ('{host}', 7946))"

    def junk_counted() -> bool:
        lan.lab.run(c.client_ns, [sys.executable, "-c", junk])
        return (value(scrape(), "ironlb_membership_rejected_datagrams_total", reason="undersized") or 0) >= 1

    wait_until(junk_counted, 30, "the junk datagram counted as undersized", retry=STARTING, interval=0.5)

    # node1 dies as a machine does (link down, kill -9): node2 detects it, after at least the dead timeout.
    c.kill("node1")

    def counted() -> Page | None:
        page = scrape()
        ok = (value(page, "ironlb_membership_alive_members") == 2
              and (value(page, "ironlb_membership_detection_seconds_count") or 0) > before)  # fmt: skip
        return page if ok else None

    page = wait_until(counted, 30, "node2 to count node1's death", retry=STARTING)
    assert value(page, "ironlb_membership_members") == 3
    assert value(page, "ironlb_membership_quorum_bool") == 1  # 2 of 3 alive in the same report
    assert value(page, "ironlb_membership_detection_seconds_bucket", le="0.75") == 0
    assert (value(page, "ironlb_membership_detection_seconds_sum") or 0) >= DEAD_TIMEOUT
