"""Read-only looks at how a process is scheduled (/proc), for the tests that check the fast process's priority."""

from __future__ import annotations

from pathlib import Path

SCHED_RR = 2


def fast_process(pid: int) -> int:
    """The fast process under ``pid`` (ironlb speaker or run): its child running ``ironlb.fastproc.child``."""
    children = [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    fast = [c for c in children if b"ironlb.fastproc.child" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(fast) == 1, (children, fast)
    return fast[0]


def scheduling(pid: int) -> tuple[int, int]:
    """(policy, real-time priority) from /proc/<pid>/stat (fields 41 and 40, counted after the command's ')')."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[38]), int(fields[37])
