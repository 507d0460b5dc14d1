"""``ironlb demo`` end to end, as the README runs it: the whole story, then nothing of it left behind."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ironlb.lab.netns import netns_available

pytestmark = pytest.mark.netns

NETNS_DIR = Path("/run/netns")


@pytest.fixture(autouse=True)
def _needs_netns() -> None:
    reason = netns_available()
    if reason or shutil.which("arping") is None:
        pytest.skip(reason or "needs arping")


def our_namespaces(prefix: str) -> dict[str, int]:
    """Our namespaces by name, with the inode that identifies them in /proc/*/ns/net."""
    found = {}
    for entry in NETNS_DIR.glob(f"{prefix}-*") if NETNS_DIR.is_dir() else ():
        try:
            found[entry.name] = entry.stat().st_ino
        except OSError:
            continue
    return found


def processes_in(inodes: set[int]) -> list[int]:
    """PIDs of processes still living in one of these network namespaces."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            link = os.readlink(proc / "ns" / "net")
        except OSError:
            continue
        m = re.fullmatch(r"net:\[(\d+)\]", link)
        if m and int(m.group(1)) in inodes:
            pids.append(int(proc.name))
    return pids


def _as_in_a_terminal() -> None:
    """Ctrl-C and Ctrl-\\ as a terminal's foreground job has them.

    A shell starts background jobs with SIGINT and SIGQUIT ignored, and a child inherits that; a test run
    started in the background (``make test &``) would otherwise hand the demo a Ctrl-C it never sees.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class DemoRun:
    """``ironlb demo`` as a subprocess in its own session (so a test can Ctrl-C it as a terminal would)."""

    def __init__(self, *args: str) -> None:
        self.prefix = f"ilbtdemo{secrets.token_hex(3)}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ironlb", "demo", "--prefix", self.prefix, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=_as_in_a_terminal,
        )  # fmt: skip
        self.lines: list[str] = []
        self.inodes: set[int] = set()
        self._seen = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("== 3."):
                # Everything is up: remember the namespaces' identities to look for survivors afterwards.
                self.inodes |= set(our_namespaces(self.prefix).values())
                self._seen.set()

    def wait_step3(self, timeout: float = 60) -> bool:
        return self._seen.wait(timeout)

    def finish(self, timeout: float = 180) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
            raise
        self._reader.join(timeout=10)
        return code, "".join(self.lines)

    def assert_nothing_left(self, output: str) -> None:
        assert our_namespaces(self.prefix) == {}, output
        assert self.inodes, output
        # The namespaces are gone from /run/netns; no process may keep one alive either.
        deadline = time.monotonic() + 5
        while processes_in(self.inodes) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_in(self.inodes) == [], output
        assert not list(Path(tempfile.gettempdir()).glob(f"{self.prefix}-*")), output


def test_demo_tells_the_whole_story_and_cleans_up() -> None:
    run = DemoRun()
    code, out = run.finish()
    assert code == 0, out
    owner = re.search(r"^   (node\d) status file: announces 192\.168\.1\.240$", out, re.MULTILINE)
    assert owner, out
    first = owner.group(1)
    assert f'client$ GET http://192.168.1.240/ -> 200 "{first}"' in out
    assert re.search(rf"bytes from 02:00:00:00:00:[0-9a-f]{{2}} \(192\.168\.1\.240\).*<- {first}$", out, re.MULTILINE)
    failover = re.search(r"failover time: (\d+) ms \(kill -> first HTTP answer from (node\d)", out)
    assert failover, out
    took, second = int(failover.group(1)), failover.group(2)
    assert second != first
    assert 0 < took < 3000, out
    assert f'client$ GET http://192.168.1.240/ -> 200 "{second}"' in out
    # BGP: the router first has the three nodes as ECMP next hops, then only the two survivors.
    everyone = "192.168.1.240/32 via 192.168.1.11 (node1), 192.168.1.12 (node2), 192.168.1.13 (node3)"
    assert everyone in out, out
    survivors = ", ".join(f"192.168.1.{10 + i} (node{i})" for i in (1, 2, 3) if f"node{i}" != first)
    assert f"192.168.1.240/32 via {survivors}" in out, out
    assert "show bfd peers: 192.168.1.11 up, 192.168.1.12 up, 192.168.1.13 up" in out, out
    assert f"the session with {first} went down (Cease/BFD Down)" in out, out
    assert "deleted its 6 namespaces" in out
    assert "done: every step gave the expected result" in out
    run.assert_nothing_left(out)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_demo_cleans_up_when_interrupted(how: str) -> None:
    run = DemoRun()
    assert run.wait_step3(), "".join(run.lines)
    time.sleep(0.3)
    if how == "ctrl-c":
        os.killpg(run.proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group
    else:
        run.proc.send_signal(signal.SIGTERM)
    code, out = run.finish(timeout=60)
    assert code == (130 if how == "ctrl-c" else 128 + signal.SIGTERM), out
    assert "interrupted" in out if how == "ctrl-c" else "terminated" in out
    assert "== Clean up" in out
    run.assert_nothing_left(out)
