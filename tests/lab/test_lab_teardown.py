"""A lab's processes go with it: their process groups at cleanup, and everything when its starter is SIGKILLed."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap

import pytest

from ironlb.lab.netns import NetnsLab
from tests.support.netns import netns_available
from tests.support.waits import wait_until

pytestmark = pytest.mark.netns


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie waiting for its reaper is gone too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_cleanup_kills_what_the_lab_processes_started() -> None:
    if why := netns_available():
        pytest.skip(why)
    lab = NetnsLab(f"tlt{secrets.token_hex(3)}")
    try:
        ns = lab.netns("a")
        # A child that ignores SIGTERM and starts a grandchild of its own, as ``ironlb run`` starts its fast process.
        proc = lab.popen(ns, ["sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        grandchild = int(proc.stdout.readline())
    finally:
        lab.cleanup()
    assert proc.poll() is not None
    wait_until(lambda: _gone(grandchild), 5.0, f"the grandchild {grandchild} to be killed with its group")


def test_a_killed_starter_takes_its_lab_processes_along() -> None:
    """SIGKILL runs no clean-up: ``die_with_us`` has the kernel kill what the benchmark started."""
    if why := netns_available():
        pytest.skip(why)
    prefix = f"tlk{secrets.token_hex(3)}"
    script = textwrap.dedent(f"""
        import sys, time
        from ironlb.lab.netns import NetnsLab
        lab = NetnsLab({prefix!r}, die_with_us=True)
        proc = lab.popen(lab.netns("a"), ["sleep", "60"])
        print(proc.pid, flush=True)
        time.sleep(60)
    """)
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        child = int(starter.stdout.readline())
        assert not _gone(child)
        starter.send_signal(signal.SIGKILL)
        starter.wait(timeout=10)
        wait_until(lambda: _gone(child), 5.0, f"the lab's process {child} to die with its starter")
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        subprocess.run(["ip", "netns", "del", f"{prefix}-a"], capture_output=True, check=False)
