"""Real-time scheduling for the fast process, with a way back.

Measured on a busy 2-core VM (``bench/chaos.py``, ARP answer time from the kernel's stamps at the client), the fast
process's own work per ARP request or heartbeat is well under a millisecond; what made answers late by tens of
milliseconds was waiting on the run queue behind other busy processes, even at nice -10 (its run delay was about
80 ms a second). So, as keepalived does for VRRP (``vrrp_rt_priority``), the fast process asks for ``SCHED_RR``
at a low real-time priority: it runs as soon as a frame or a timer wakes it. It needs CAP_SYS_NICE (root has it);
without it the process keeps nice -10. ``IRONLB_FASTPATH_RT_PRIORITY=0`` turns it off.

The way back: a real-time process that never sleeps would starve the node (the kernel still keeps 5 % of each
second for the others). ``RLIMIT_RTTIME`` makes the kernel send SIGXCPU once the process has used ``cpu_limit``
seconds of CPU without blocking; the handler (a Python signal handler, so it runs even inside a long callback)
drops back to normal scheduling for good and says so in the log. A junk flood the process cannot keep up with
is such a case: it is then an ordinary process again, as before.

Containers: CAP_SYS_NICE is not always enough. A kernel with real-time group scheduling (``CONFIG_RT_GROUP_SCHED``)
on cgroup v1 gives every new cpu cgroup a real-time budget of 0 (``cpu.rt_runtime_us``), and refuses SCHED_RR to
its processes whatever their capabilities; the refusal then names that budget (:func:`rt_budget`), so that an
operator knows it is the container runtime's setting, not ironlb's.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
from pathlib import Path
from types import FrameType

__all__ = ["CPU_LIMIT", "ENV", "PRIORITY", "go_realtime", "rt_budget"]

log = logging.getLogger(__name__)

PRIORITY = 10
"""SCHED_RR priority (1-99): above every normal process, below the kernel's own real-time threads (50 and up)."""
CPU_LIMIT = 0.5
"""Seconds of CPU the process may use without blocking before it drops back to normal scheduling."""
ENV = "IRONLB_FASTPATH_RT_PRIORITY"
_limit = CPU_LIMIT  # what go_realtime set, for the log


def _priority_from_env() -> int:
    raw = os.environ.get(ENV)
    if raw is None:
        return PRIORITY
    try:
        value = int(raw)
    except ValueError:
        log.warning("%s=%r is not an integer: using %d", ENV, raw, PRIORITY)
        return PRIORITY
    return max(0, min(value, 49))


def rt_budget(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """This process's cgroup v1 real-time budget (``cpu.rt_runtime_us``, microseconds per period), if readable.

    None without cgroup v1's cpu controller or real-time group scheduling (then no budget limits SCHED_RR).
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, controllers, path = [*line.split(":", 2), "", ""][:3]
        if "cpu" not in controllers.split(","):
            continue
        rel = path.strip("/")
        # The hierarchy's mount is named after its controllers; inside a container the own cgroup may be the root.
        for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
            for where in (mount / rel, mount) if rel else (mount,):
                try:
                    return int((where / "cpu.rt_runtime_us").read_text())
                except (OSError, ValueError):
                    continue
    return None


def _back_to_normal(_signum: int, _frame: FrameType | None) -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        return
    log.warning(
        "fast path: used %.1f s of CPU without sleeping at real-time priority (a flood it cannot keep up with, or a "
        "bug): back to normal scheduling", _limit,
    )  # fmt: skip


def go_realtime(priority: int | None = None, cpu_limit: float = CPU_LIMIT) -> str:
    """Ask for ``SCHED_RR`` at ``priority`` (default: :data:`PRIORITY` or the environment); say what was granted.

    Only the calling thread is changed, and children it would start get normal scheduling (reset on fork).
    """
    global _limit
    wanted = _priority_from_env() if priority is None else priority
    if wanted <= 0:
        return "normal scheduling (real-time priority turned off)"
    if not hasattr(os, "SCHED_RR"):
        return "normal scheduling (no SCHED_RR here)"
    limit = max(1, int(cpu_limit * 1_000_000))
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_RTTIME)
        # The hard limit stays: past it the kernel kills; the soft one only signals, and the handler steps back.
        if hard != resource.RLIM_INFINITY and hard < limit:
            limit = hard
        signal.signal(signal.SIGXCPU, _back_to_normal)
        resource.setrlimit(resource.RLIMIT_RTTIME, (limit, hard))
        _limit = limit / 1e6
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(wanted))
    except (OSError, ValueError) as err:
        hint = ""
        if isinstance(err, PermissionError) and rt_budget() == 0:
            hint = (
                "; this cgroup has no real-time budget (cpu.rt_runtime_us is 0: real-time group scheduling on cgroup"
                " v1), which the container runtime must grant"
            )
        return f"normal scheduling (SCHED_RR {wanted} refused: {err}{hint})"
    return f"SCHED_RR priority {wanted} (back to normal after {limit / 1e6:.1f} s of CPU without sleeping)"
