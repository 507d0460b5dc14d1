"""The cluster lab's helpers that need no cluster: requirement checks, waiting, and the teardown's process search
(which must never touch a process that is not under the lab's own containerd shims)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ironlb.lab import kube_cluster
from ironlb.lab.kube_cluster import missing_requirements, wait_until


def test_missing_binaries_are_named(tmp_path: Path) -> None:
    problem = missing_requirements(tmp_path, tmp_path)
    assert problem is not None
    assert "root" in problem or "build-k8s.sh --cluster" in problem or "setup.sh" in problem or "CNI" in problem


def test_wait_until_returns_the_value_and_names_what_timed_out() -> None:
    calls = iter([None, ValueError("starting"), "ready"])

    def check() -> str | None:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(check, 5, "thing", interval=0.01) == "ready"
    with pytest.raises(TimeoutError, match=r"waiting for the widget; last error: RuntimeError\('boom'\)"):
        wait_until(lambda: (_ for _ in ()).throw(RuntimeError("boom")), 0.05, "the widget", interval=0.01)


def test_teardown_search_spares_processes_outside_the_lab(tmp_path: Path) -> None:
    """A process whose command line merely mentions the socket path is not a shim of that containerd."""
    sock = tmp_path / "containerd.sock"
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-address", str(sock)])
    try:
        inodes, cgroups = kube_cluster._kill_containers(sock, 9)
        assert (inodes, cgroups) == (set(), set())
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_reachability_takes_the_longest_run_of_failed_attempts() -> None:
    """A rollout's per-Service figure: runs of failures measured from the first failed start to the next answered
    start; overlapping attempts sorted by start; a run not followed by an answer counts to its end, unrecovered."""
    from ironlb.lab.kube_demo import reachability

    def http(t0: float, ok: bool, t1: float | None = None) -> dict[str, object]:
        return {"ev": "http", "t0": t0, "t1": t0 + 0.005 if t1 is None else t1, "ok": ok}

    events = [http(1.00, True), http(1.02, False, 2.02), http(1.01, False), http(1.03, True), {"ev": "ready", "t": 0},
              {"ev": "arp", "t": 1.5, "mac": "02:00:00:00:00:0b"}, http(2.0, False), http(2.5, True),
              {"ev": "arp", "t": 2.6, "mac": "02:00:00:00:00:0c"}, {"ev": "arp", "t": 2.7, "mac": "02:00:00:00:00:0b"}]
    r = reachability("192.168.1.240", events)
    assert (r.attempts, r.failed, r.recovered) == (6, 3, True)
    assert r.worst_gap_s == pytest.approx(0.5)
    assert r.probe_pause_s == pytest.approx(0.97)  # no attempt started between 1.03 and 2.0
    assert r.macs == ["02:00:00:00:00:0b", "02:00:00:00:00:0c"]
    assert reachability("x", [http(1, True)]).worst_gap_s == 0
    r = reachability("x", [http(1, True), http(2, False, 3.0)])
    assert not r.recovered and r.worst_gap_s == pytest.approx(1.0)
