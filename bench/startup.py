"""``ironlb run`` from process start to its first announcement, with 1,000 Services (issue 16, "fast start").

The state directory is ``bench/restarts.py``'s (``--services`` Services on pinned IPs, one BGPAdvertisement, a
BGPPeer nobody answers): the node reads and validates it, allocates, plans BGP, starts its fast process and logs
``first announcement``. Each run reads the process's own figures from its log: the first line (interpreter and
imports done) and the first announcement, each as wall time since the process started and CPU time used.

On a machine shared with other work, wall time measures the machine; ``--fifo`` runs ``ironlb run`` (and so its
fast process) under ``chrt -f 20`` (SCHED_FIFO, root), which gives it the cores as an idle machine would.

With ``--members 3`` the node has two other members (silent: the first announcement is then BGP's, Layer 2 waits
for the membership), so the status plans three speakers.

Run from the repository root: ``python -m bench.startup [--runs 10] [--services 1000] [--members 3] [--fifo]
[--base DIR]``; ``--base DIR`` runs another checkout's ``ironlb run`` (its ``src`` first on the path), interleaved.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from bench.restarts import config
from ironlb.lab.failover import percentile

_FIGURES = re.compile(r"\(([\d.]+) s after the process started, ([\d.]+) s of CPU\)")
# The first announcement's line first: it is not also counted as the first log line.
MARKS = {"first announcement": "first announcement", "starting": "first log line"}


def one_run(
    state: Path, fifo: bool, members: int = 1, timeout: float = 30.0, src: str | None = None
) -> dict[str, tuple[float, float]]:
    """Start ``ironlb run`` (``src``: another checkout's, first on the path), wait for its first announcement, stop
    it; the figures of its start-up lines."""
    shutil.rmtree(state / ".ironlb", ignore_errors=True)
    cmd = [sys.executable, "-m", "ironlb", "run", "--state", str(state), "--node", "n1", "--metrics-address", ""]
    if members > 1:  # the others never answer: the first announcement is BGP's (Layer 2 waits for them)
        cmd += ["--members", ",".join(f"n{i + 1}=127.0.0.{i + 1}:17946" for i in range(members)),
                "--insecure-no-secret"]  # fmt: skip
    if fifo:
        cmd = ["chrt", "-f", "20", *cmd]
    env = dict(os.environ, PYTHONPATH=src) if src else None
    text = run_until_announced(cmd, env, signal.SIGINT, 10.0, timeout)
    return figures(text, MARKS)


def run_until_announced(
    cmd: list[str], env: dict[str, str] | None, stop: signal.Signals, stop_timeout: float, timeout: float
) -> str:
    """Run ``cmd`` until it logs its first announcement (or exits, or ``timeout``), stop it with ``stop`` (killed
    after ``stop_timeout``); everything it printed."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            deadline = time.monotonic() + timeout
            text = ""
            while time.monotonic() < deadline and "first announcement" not in text and proc.poll() is None:
                time.sleep(0.05)
                log.seek(0)
                text = log.read()
        finally:
            proc.send_signal(stop)
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return text


def figures(text: str, marks: Mapping[str, str]) -> dict[str, tuple[float, float]]:
    """For each start-up line of ``text`` holding a needle of ``marks`` (the first that matches, in order), its key
    and (wall s, CPU s) figures; the first such line per key."""
    out: dict[str, tuple[float, float]] = {}
    for line in text.splitlines():
        m = _FIGURES.search(line)
        key = next((k for needle, k in marks.items() if needle in line), None) if m is not None else None
        if m is not None and key is not None and key not in out:
            out[key] = (float(m.group(1)), float(m.group(2)))
    return out


def print_summary(rows: Mapping[str, list[dict[str, tuple[float, float]]]], keys: Iterable[str]) -> None:
    """Per source tag and key: the wall and CPU p50, min and max over the runs, in ms."""
    for tag, runs in rows.items():
        for key in keys:
            walls = [r[key][0] * 1000 for r in runs if key in r]
            cpus = [r[key][1] * 1000 for r in runs if key in r]
            if walls:
                print(f"  {key}{tag}: wall p50 {percentile(walls, 50):.0f} ms (min {min(walls):.0f}, max "
                      f"{max(walls):.0f}); CPU p50 {percentile(cpus, 50):.0f} ms (min {min(cpus):.0f}, max "
                      f"{max(cpus):.0f})")  # fmt: skip

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--fifo", action="store_true", help="run ironlb under chrt -f 20 (root)")
    parser.add_argument("--members", type=int, default=1, help="members of the node's cluster (others silent)")
    parser.add_argument("--base", metavar="DIR", help="also run the checkout DIR's ironlb (its src/), interleaved")
    args = parser.parse_args(argv)
    sources: dict[str, str | None] = {"": None, **({" (base)": os.path.join(args.base, "src")} if args.base else {})}
    with tempfile.TemporaryDirectory(prefix="ironlb-startup-") as tmp:
        state = Path(tmp)
        base, services = config(args.services, gr=False)
        (state / "config.yaml").write_text(base)
        (state / "services.yaml").write_text(services)
        rows: dict[str, list[dict[str, tuple[float, float]]]] = {tag: [] for tag in sources}
        for i in range(args.runs):
            for tag, src in sources.items():
                row = one_run(state, args.fifo, args.members, src=src)
                rows[tag].append(row)
                print(f"  {i + 1}{tag}: " + ", ".join(f"{k} {w * 1000:.0f} ms ({c * 1000:.0f} ms CPU)"
                                                     for k, (w, c) in row.items()), flush=True)  # fmt: skip
    print(f"{args.services} Services, {args.members} member(s), {'SCHED_FIFO' if args.fifo else 'normal priority'}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print_summary(rows, ("first log line", "first announcement"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
