"""The fast process's real-time scheduling: granted when privileged, and given back when it never sleeps.

Each case runs in a process of its own (the test runner itself must not become a real-time process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ironlb.fastproc.realtime import rt_budget

ASK = """
import logging, os, resource, sys, time
logging.basicConfig(level=logging.INFO, format="%(message)s")
from ironlb.fastproc.realtime import go_realtime
print(go_realtime(cpu_limit=float(sys.argv[1])), flush=True)
print("policy", os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0), flush=True)
print("limit", resource.getrlimit(resource.RLIMIT_RTTIME)[0], flush=True)
if sys.argv[2] == "spin":
    end = time.process_time() + 3 * float(sys.argv[1])
    while time.process_time() < end:  # CPU without a blocking call
        pass
    print("policy", os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0), flush=True)
"""


def run(*args: str, env: dict[str, str] | None = None) -> list[str]:
    r = subprocess.run([sys.executable, "-c", ASK, *args], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **(env or {})}, check=True)  # fmt: skip
    return (r.stdout + r.stderr).splitlines()


ROOT = os.geteuid() == 0  # SCHED_RR needs CAP_SYS_NICE


def test_granted_with_a_cpu_limit_or_refused_without_privilege() -> None:
    out = run("0.5", "idle")
    if not ROOT:
        assert out[0].startswith("normal scheduling (SCHED_RR 10 refused"), out
        assert f"policy {os.SCHED_OTHER}" in out
        return
    assert out[0].startswith("SCHED_RR priority 10"), out
    assert f"policy {os.SCHED_RR}" in out
    assert "limit 500000" in out


def test_a_process_that_never_sleeps_goes_back_to_normal_scheduling() -> None:
    out = run("0.1", "spin")
    if not ROOT:  # never real-time in the first place
        assert [line for line in out if line.startswith("policy")] == [f"policy {os.SCHED_OTHER}"] * 2, out
        return
    assert [line for line in out if line.startswith("policy")] == [f"policy {os.SCHED_RR}", f"policy {os.SCHED_OTHER}"]
    assert any("used 0.1 s of CPU without sleeping" in line for line in out), out


def test_turned_off_by_the_environment() -> None:
    out = run("0.5", "idle", env={"IRONLB_FASTPATH_RT_PRIORITY": "0"})
    assert out[0] == "normal scheduling (real-time priority turned off)", out
    assert f"policy {os.SCHED_OTHER}" in out


def test_the_cgroup_v1_real_time_budget_is_found_where_the_hierarchy_is_mounted(tmp_path: Path) -> None:
    """A container's cgroup on a kernel with real-time group scheduling: a budget of 0 is why SCHED_RR is refused."""
    proc = tmp_path / "cgroup"
    root = tmp_path / "sys"
    proc.write_text("12:pids:/k8s.io/abc\n3:cpu,cpuacct:/k8s.io/abc\n0::/\n")
    assert rt_budget(proc, root) is None  # no hierarchy mounted: nothing known
    (root / "cpu,cpuacct" / "k8s.io" / "abc").mkdir(parents=True)
    (root / "cpu,cpuacct" / "k8s.io" / "abc" / "cpu.rt_runtime_us").write_text("0\n")
    assert rt_budget(proc, root) == 0
    # Inside the container's own cgroup namespace the mount shows its cgroup as the root.
    proc.write_text("3:cpu:/\n")
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.rt_runtime_us").write_text("950000\n")
    assert rt_budget(proc, root) == 950000
    proc.write_text("0::/system.slice\n")  # cgroup v2 only: no such budget
    assert rt_budget(proc, root) is None
