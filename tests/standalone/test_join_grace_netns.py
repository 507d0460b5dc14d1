"""The join-grace rule with real processes: a stale decision yields to a member that joins (issue 9).

The fast process answers what its main process last decided. When a member joins that this decision did not count
as alive, the joiner may win some of its IPs, so the decision is answered for ``join_grace`` (2 s) only, and then
nothing until a decision that counts the joiner arrives (``fastproc/guard.py``). Here the main process that should
make that decision is stopped (SIGSTOP, shorter than ``--wedge-timeout``), so only the rule can end the overlap:

1. three nodes of ``ironlb run``; the VIP's announcer A is killed (link down, kill -9) and B takes the VIP over;
2. B's main process is stopped; its fast process goes on heartbeating and answering;
3. A comes back and wins the VIP again (the election among all three is what it was at the start): A answers, and
   B, whose decision did not count A, stops answering after the grace although its main process never ran;
4. B's main process continues: it decides with A counted, and A stays the only one answering.

Without the rule, B would answer for as long as its main process is stopped: two nodes for one IP. The dead timeout
is 1 s, as in the other netns tests: the assertions are functional, not timings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from ironlb.lab.lan import Lan
from tests.support.waits import STARTING, wait_until

from .conftest import NODES, Cluster

pytestmark = pytest.mark.netns

WEDGE_TIMEOUT = 120.0  # far longer than B's main process stays stopped: only the join-grace rule may act


def test_a_stopped_main_process_yields_the_vip_to_a_member_that_joins(lan: Lan, tmp_path: Path) -> None:
    c = Cluster(lan, tmp_path)
    c.extra_args = ("--wedge-timeout", str(WEDGE_TIMEOUT))
    c.ml_dead_timeout = 1.0
    stopped: str | None = None
    try:
        a = c.start_one_announcer(NODES)
        a_mac = lan.node(a).mac

        # 1. A dies; B takes the VIP over.
        c.kill(a)
        others = [n for n in NODES if n != a]
        # (A's status file is as it died: the others' count)
        wait_until(lambda: len([n for n in c.announcers() if n != a]) == 1, 30, "another node announces")
        b = next(n for n in c.announcers() if n != a)
        b_mac = lan.node(b).mac
        wait_until(lambda: c.arping_macs() == {b_mac}, 20, f"{b} answers for the VIP")

        # 2. B's main process stops: its fast process answers B's last decision, which does not count A.
        os.kill(c.procs[b].pid, signal.SIGSTOP)
        stopped = b
        offsets = {n: len(c.log(n)) for n in others}

        # 3. A comes back and wins the VIP: once the grace is over, only A answers, B's main process still stopped.
        c.revive(a)
        wait_until(lambda: c.arping_macs(count=1) == {a_mac}, 60, f"only {a} answers while {b}'s main is stopped",
                   retry=STARTING)  # fmt: skip
        for _ in range(3):  # and it stays so: B does not answer again from its stale decision
            time.sleep(1.0)
            assert c.arping_macs() == {a_mac}
        assert c.running(b) and c.procs[b].poll() is None
        for node in others:  # B's fast process heartbeated all along: nobody saw B die
            assert f"MemberDown(name='{b}'" not in c.log(node)[offsets[node] :], c.log(node)[-3000:]
        assert "wedged" not in c.log(b)

        # 4. B's main process decides with A counted: A remains the only announcer.
        os.kill(c.procs[b].pid, signal.SIGCONT)
        stopped = None
        wait_until(lambda: c.converged() and c.announcers() == [a], 30, f"{a} the only announcer", retry=STARTING)
        assert c.arping_macs() == {a_mac}
    finally:
        if stopped is not None and c.running(stopped):  # never leave a stopped process behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.procs[stopped].pid, signal.SIGCONT)
