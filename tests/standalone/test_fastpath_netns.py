"""The fast path holds while the main loop is busy: ARP answers and heartbeats go on, nobody is declared dead.

``--test-stall-on-sigusr1 S`` (a hidden test hook) makes SIGUSR1 keep a node's main loop busy for S seconds in
pure Python, holding the GIL in bursts as a huge manifest or a BGP full table would. Without the fast path the
nodes would answer no ARP and send no heartbeat for those seconds, and the others would declare them dead after
the dead timeout. The dead timeout here is 1 s (not the default 350 ms) and the stall 3 s: the functional
difference stays stark, and a CI machine busy with other jobs does not make a heartbeat late by 350 ms
(``bench/chaos.py`` measures the timings under load). Both fast paths: a process of its own (the default) and a
thread of the main process (``--fastpath thread``).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from ironlb.lab.lan import Lan
from tests.support.waits import WaitTimeout, wait_until

from .conftest import NODES, Cluster

pytestmark = pytest.mark.netns

STALL = 5.0
DEAD_TIMEOUT = 1.0
STARTED = "test hook: stalling the main loop"
OVER = "test hook: main loop stall over"


@pytest.mark.parametrize("fastpath", ["process", "thread"])
def test_arp_and_heartbeats_go_on_while_every_main_loop_is_blocked(lan: Lan, tmp_path: Path, fastpath: str) -> None:
    c = Cluster(lan, tmp_path)
    c.extra_args = ("--test-stall-on-sigusr1", str(STALL), "--fastpath", fastpath)
    c.ml_dead_timeout = DEAD_TIMEOUT
    nodes = NODES
    announcer = c.start_one_announcer(nodes)
    mac = lan.node(announcer).mac
    assert c.arping_macs() == {mac}

    for node in nodes:
        c.procs[node].send_signal(signal.SIGUSR1)
    try:
        wait_until(lambda: all(STARTED in c.log(n) for n in nodes), 20, "every main loop stalled")
    except WaitTimeout as err:
        raise AssertionError([c.log(n)[-2000:] for n in nodes]) from err

    # While every main loop is busy, the announcer's fast path still answers ARP: every arping that both began
    # and ended within the stall got the announcer's answer.
    def stalled() -> bool:
        return not any(OVER in c.log(n) for n in nodes)

    during: list[set[str]] = []
    while stalled():
        answered = c.arping_macs(count=1)
        if stalled():
            during.append(answered)
    assert during, "the stall ended before one arping could run: it proves nothing"
    assert all(answered == {mac} for answered in during), during

    # The stall ends; no member was ever declared down, on any node, and the announcer did not change.
    wait_until(lambda: all(OVER in c.log(n) for n in nodes), STALL + 10, "every stall over")
    time.sleep(0.5)  # a membership change queued during the stall is applied by now
    for node in nodes:
        log = c.log(node)
        assert "MemberDown" not in log, log[-3000:]
        assert c.running(node)
    wait_until(lambda: c.announcers() == [announcer], 5, f"{announcer} still the announcer")
    assert c.arping_macs() == {mac}
