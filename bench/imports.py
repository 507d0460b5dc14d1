"""CPU time of ``ironlb speaker``'s and ``ironlb run``'s imports (issue 16, "fast start").

Each run is a new interpreter that imports what the command imports before its first log line (``ironlb.cli`` and
the modules its ``_cmd_speaker`` / ``_cmd_run`` import) and exits; the figure is that process's user + system CPU
time (``os.wait4``), which a loaded machine inflates far less than wall time. ``python`` is the bare interpreter
(the same virtualenv, ``site`` included): the floor under all; ``fast`` is the fast process's
(``ironlb.fastproc.child``), which both commands spawn first thing. ``--base DIR`` measures another checkout
alongside (its ``src`` first on the path), interleaved. ``--tree`` adds the modules with the largest self time in
``-X importtime`` (wall time, the minimum over the runs: a ranking, not a measure).

Run from the repository root: ``python -m bench.imports [--runs 15] [--base DIR] [--tree 25] [COMMAND ...]``.
The interpreter writes no ``.pyc`` files when ``PYTHONDONTWRITEBYTECODE`` is set: compile first (``python -m
compileall -q src``) and unset it to measure as the image runs (its Dockerfile compiles every module).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

from ironlb.lab.failover import percentile

COMMANDS = {
    "python": "pass",
    "speaker": "from ironlb.cli import main\n"
    "import asyncio\n"
    "from ironlb.fastproc.guard import GuardConfig\n"
    "from ironlb.membership import MembershipConfig\n"
    "from ironlb.runtime import tune_gc\n"
    "from ironlb.speaker.main import RunOptions, env_namespace, run\n"
    "from ironlb.speaker.speaker import SpeakerOptions\n",
    "fast": "import ironlb.fastproc.child\n",
    "run": "from ironlb.cli import main\n"
    "import asyncio\n"
    "from ironlb.config.reading import ReadLimits, parse_size, read_bytes\n"
    "from ironlb.fastproc.guard import GuardConfig\n"
    "from ironlb.membership import MembershipConfig, parse_members\n"
    "from ironlb.membership.wire import MIN_SECRET_LEN\n"
    "from ironlb.metrics.server import parse_address\n"
    "from ironlb.standalone.runner import Runner, RunOptions\n",
}

_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def cpu_seconds(code: str, src: str | None = None) -> float:
    """User + system CPU time of one interpreter running ``code`` (with ``src`` first on its path)."""
    env = dict(os.environ, PYTHONPATH=src) if src else None
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{code!r} exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def self_times(code: str) -> dict[str, int]:
    """Per module, its self time in microseconds from one ``-X importtime`` run."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    return {m.group(4): int(m.group(1)) for m in map(_LINE.match, err.stderr.splitlines()) if m}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--base", metavar="DIR", help="also measure the checkout DIR (its src/ first on the path)")
    parser.add_argument("--tree", type=int, default=0, metavar="N", help="the N modules with the largest self time")
    parser.add_argument("commands", nargs="*", metavar="COMMAND", help=f"of {', '.join(COMMANDS)} (default: all)")
    args = parser.parse_args(argv)
    args.commands = args.commands or list(COMMANDS)
    if unknown := set(args.commands) - set(COMMANDS):
        parser.error(f"unknown command(s): {', '.join(sorted(unknown))}")
    sources = {"": None, **({" (base)": os.path.join(args.base, "src")} if args.base else {})}
    figures: dict[str, list[float]] = {name + tag: [] for name in args.commands for tag in sources}
    for _ in range(args.runs):  # interleaved, so that a change in the machine's load hits every command alike
        for name in args.commands:
            for tag, src in sources.items():
                figures[name + tag].append(cpu_seconds(COMMANDS[name], src) * 1000)
    print(f"{args.runs} runs, .pyc {'off' if os.environ.get('PYTHONDONTWRITEBYTECODE') else 'on'}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for name, ms in figures.items():
        print(f"  {name}: CPU p50 {percentile(ms, 50):.0f} ms (min {min(ms):.0f}, max {max(ms):.0f})")
    for name in args.commands if args.tree else ():
        best: dict[str, int] = {}
        for _ in range(args.runs):
            for module, us in self_times(COMMANDS[name]).items():
                best[module] = min(us, best.get(module, us))
        print(f"{name}: {len(best)} modules, self time (min of {args.runs}) {sum(best.values()) / 1000:.0f} ms")
        for module, us in sorted(best.items(), key=lambda kv: -kv[1])[: args.tree]:
            print(f"  {us / 1000:7.1f} ms  {module}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
