"""The fast path in its own process (``ironlb run``'s default): what holds when the main process stops or dies.

- every node's main process stopped (SIGSTOP, shorter than ``--wedge-timeout``): the fast processes go on
  answering ARP and heartbeating; nobody is declared dead and the announcer stays;
- the announcer's main process stopped past ``--wedge-timeout``: its fast process withdraws and leaves the
  membership, another node takes the IP over, and never do two nodes answer; after SIGCONT it rejoins;
- the announcer's main process killed (-9, its link up): the fast process withdraws, leaves (another node takes
  over without waiting for the dead timeout) and exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironlb.lab.lan import Lan
from tests.support.waits import wait_until

from .conftest import NODES, Cluster

pytestmark = pytest.mark.netns


def fast_pid(c: Cluster, node: str) -> int:
    """The PID of the node's fast process (the main process's only child)."""
    pid = c.procs[node].pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def started(lan: Lan, tmp_path: Path, wedge_timeout: float) -> Iterator[Cluster]:
    c = Cluster(lan, tmp_path)
    c.extra_args = ("--wedge-timeout", str(wedge_timeout))
    c.ml_dead_timeout = 1.0  # a loaded CI machine must not make heartbeats that late: the mechanism is the point
    try:
        c.start_one_announcer(NODES)
        yield c
    finally:
        for node in NODES:  # never leave a stopped process behind
            if c.running(node):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(c.procs[node].pid, signal.SIGCONT)


def test_arp_and_heartbeats_go_on_while_every_main_process_is_stopped(lan: Lan, tmp_path: Path) -> None:
    with started(lan, tmp_path, wedge_timeout=60) as c:
        announcer = c.announcers()[0]
        mac = lan.node(announcer).mac
        assert c.arping_macs() == {mac}
        for node in NODES:
            os.kill(c.procs[node].pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        during: list[set[str]] = []
        while time.monotonic() - stopped_at < 6:
            during.append(c.arping_macs(count=1))
        for node in NODES:
            os.kill(c.procs[node].pid, signal.SIGCONT)
        assert during and all(answered == {mac} for answered in during), during
        time.sleep(0.5)  # a membership change queued during the stop is applied by now
        for node in NODES:
            log = c.log(node)
            assert "MemberDown" not in log, log[-3000:]
            assert "wedged" not in log, log[-3000:]
            assert c.running(node)
        wait_until(lambda: c.announcers() == [announcer], 10, f"{announcer} still the announcer")
        assert c.arping_macs() == {mac}


def test_a_wedged_main_process_hands_its_ips_over_and_rejoins(lan: Lan, tmp_path: Path) -> None:
    wedge = 3.0
    with started(lan, tmp_path, wedge_timeout=wedge) as c:
        announcer = c.announcers()[0]
        mac = lan.node(announcer).mac
        os.kill(c.procs[announcer].pid, signal.SIGSTOP)
        seen: list[set[str]] = []

        def moved() -> bool:
            answered = c.arping_macs(count=1)
            seen.append(answered)
            return len(answered) == 1 and answered != {mac}

        wait_until(moved, wedge + 30, "another node answers for the VIP")
        assert all(len(answered) <= 1 for answered in seen), seen  # never two answers
        assert "wedged" in c.log(announcer)
        # The stopped node's status file is its main process's, as stale as that process: the others' count.
        new = [n for n in c.announcers() if n != announcer]
        assert len(new) == 1, new

        os.kill(c.procs[announcer].pid, signal.SIGCONT)
        wait_until(lambda: c.converged() and len(c.announcers()) == 1, 60, "the wedged node rejoined")
        assert "rejoining the membership" in c.log(announcer)
        wait_until(lambda: len(c.arping_macs()) == 1, 20, "one node answers")


def test_a_killed_main_process_takes_its_fast_process_with_it(lan: Lan, tmp_path: Path) -> None:
    with started(lan, tmp_path, wedge_timeout=60) as c:
        announcer = c.announcers()[0]
        mac = lan.node(announcer).mac
        fast = fast_pid(c, announcer)
        c.procs[announcer].send_signal(signal.SIGKILL)
        c.procs[announcer].wait(timeout=10)
        wait_until(lambda: not alive(fast), 20, "the fast process exited")
        log = c.log(announcer)
        assert "the heavy side closed the channel" in log, log[-3000:]
        others = [n for n in NODES if n != announcer]
        wait_until(lambda: len(c.announcers()) == 1 and c.announcers()[0] in others, 30, "another node announces")
        # It left (LEAVE), so the others did not have to wait for the dead timeout to notice.
        left = f"MemberDown(name='{announcer}', reason='left')"
        assert all(left in c.log(n) for n in others), [c.log(n)[-2000:] for n in others]
        wait_until(lambda: c.arping_macs() not in (set(), {mac}), 20, "the new announcer answers")
        assert len(c.arping_macs()) == 1
