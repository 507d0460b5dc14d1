"""A planned restart (SIGTERM, then the node goes away, then it comes back) seen from a real client on the LAN.

The client's kernel neighbour table carries its HTTP traffic (a new connection every 10 ms) and real ``arping``
asks for the IP every 20 ms while a sniffer records every ARP frame about it. Membership runs with a 3 s dead
timeout here, so a node that vanished without handing over would leave the IP unanswered for 3 s or more; the
bound below (1.5 s) tells the hand-over apart from that failure detection without timing the hand-over itself
(its figure is ``bench/l2_failover.py --handover-trials``).
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from ironlb.lab.cluster import StandaloneCluster
from ironlb.lab.lan import Lan, start_http_servers
from tests.support.waits import wait_until

from .conftest import VIP

pytestmark = pytest.mark.netns

DEAD_TIMEOUT = 3.0
BOUND = 1.5  # well under DEAD_TIMEOUT: only a hand-over keeps every gap below it


def longest_gap(times: Iterable[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] without an event."""
    points = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(points))


def test_sigterm_hands_over_before_falling_silent_and_the_restarted_node_takes_back_without_a_gap(
    lan: Lan, tmp_path: Path
) -> None:
    start_http_servers(lan)
    # A hand-over timeout far beyond the test: the successor's claim, not the timeout, must end each hand-over.
    c = StandaloneCluster(
        lan, tmp_path, ml_interval=0.5, ml_dead_timeout=DEAD_TIMEOUT, log_level="debug",
        extra_args=("--handover-timeout", "20"),
    )  # fmt: skip
    arping: subprocess.Popen[str] | None = None
    try:
        c.apply_seed()
        c.start_all()
        owner = c.wait_steady(VIP, timeout=60)
        assert owner is not None, [c.log(n) for n in c.node_names]
        with c.probe(VIP) as probe:
            assert probe.wait_ready()
            assert probe.wait_answer(owner, time.monotonic(), 20) is not None
            cmd = ["arping", "-q", "-i", "eth0", "-W", "0.02", "-c", "3000", VIP]
            arping = lan.lab.popen(c.client_ns, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)

            # Planned stop: SIGTERM; once the process has exited the node goes away (its link down).
            t_term = time.monotonic()
            c.procs[owner].send_signal(signal.SIGTERM)
            assert c.procs[owner].wait(timeout=30) == 0
            t_exit = time.monotonic()
            c.link(owner, up=False)
            successor = wait_until(
                lambda: next(iter(c.announcers(VIP)), None), 10, "a successor announcing the IP", interval=0.01
            )
            successor_mac = lan.node(successor).mac.lower()
            owner_mac = lan.node(owner).mac.lower()
            # The successor's announcement reached the client before the old owner fell silent, and it was
            # the successor's claim (not the timeout) that let the old owner go.
            events = probe.snapshot()
            claim = next(e for e in events if e.get("ev") == "arp" and e["t"] > t_term and e["mac"] == successor_mac)
            assert claim["t"] < t_exit, (claim, t_term, t_exit)
            assert f"hand-over of {VIP} done" in c.log(owner), c.log(owner)
            assert probe.wait_answer(successor, t_exit, 20) is not None
            t_gone = time.monotonic()

            # The node comes back: it takes the IP back once settled, the successor answering until then.
            c.link(owner, up=True)
            c.start(owner)
            wait_until(lambda: c.steady(VIP) == owner, 60, f"{owner} announcing {VIP} again", interval=0.01)
            assert probe.wait_answer(owner, time.monotonic(), 20) is not None
            t_end = time.monotonic()
            events = probe.snapshot()

        replies = [e["t"] for e in events if e.get("ev") == "arp" and e.get("op") == 2]
        answers = [e["t1"] for e in events if e.get("ev") == "http" and e.get("ok")]
        macs = {e["mac"] for e in events if e.get("ev") == "arp" and e.get("op") == 2 and e["t"] > t_term}
        assert macs <= {owner_mac, successor_mac}, macs

        def report() -> dict[str, Any]:
            return {"arp": longest_gap(replies, t_term, t_end), "http": longest_gap(answers, t_term, t_end)}

        # ARP was answered throughout: the stop, the node away, its start-up and the take-back.
        assert longest_gap(replies, t_term, t_gone) < BOUND, report()
        assert longest_gap(replies, t_gone, t_end) < BOUND, report()
        # And the client's traffic (its kernel neighbour entry) moved before the old owner went away and back
        # when it returned.
        assert longest_gap(answers, t_term, t_end) < BOUND, report()
    finally:
        if arping is not None and arping.poll() is None:
            arping.terminate()
            arping.wait(timeout=5)
        c.close()
