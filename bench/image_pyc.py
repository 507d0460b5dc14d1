"""Import cost in the ironlb image of its byte code's invalidation mode: checked-hash vs unchecked-hash ``.pyc``.

The image is immutable and runs with ``PYTHONDONTWRITEBYTECODE`` on a read-only root, so its ``.pyc`` files must
be valid as built. Timestamp ``.pyc`` are not reproducible (they hold the source's build-time mtime, which the
layers then clamp, so they would go stale); hash-based ones are, in two modes (PEP 552): checked (each import
reads the source and hashes it to validate the ``.pyc``) or unchecked (the ``.pyc`` is used as it is). This bench
extracts the image archive into three roots: as built, with ``/opt/ironlb/lib`` (ironlb and its dependencies)
recompiled unchecked, and with Debian's standard library (``/usr/lib/python3.11``) unchecked too; then runs the
commands of ``bench.imports`` there (``chroot``, the image's interpreter, interleaved) and reports each process's
user + system CPU time.

Run as root from the repository root: ``python -m bench.image_pyc [--runs 15] [--archive ironlb.tar] [COMMAND ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from bench.imports import COMMANDS
from ironlb.lab.failover import percentile
from ironlb.lab.kube_cluster import default_images_dir

PYTHON = "/opt/ironlb/bin/python"
ENV = {"PATH": "/opt/ironlb/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       "PYTHONDONTWRITEBYTECODE": "1"}
VARIANTS = {"checked (as built)": [], "unchecked /opt/ironlb": ["/opt/ironlb/lib"],
            "unchecked /opt/ironlb + stdlib": ["/opt/ironlb/lib", "/usr/lib/python3.11", "/usr/lib/python3"]}


def extract(archive: Path, root: Path) -> None:
    """The image's layers, in order, into ``root`` (whiteouts skipped: this only reads the Python files)."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(archive) as outer:
        outer.extractall(tmp, filter="data")
        [entry] = json.loads((Path(tmp) / "manifest.json").read_text())
        for layer in entry["Layers"]:
            with tarfile.open(Path(tmp) / layer) as tar:
                members = [m for m in tar.getmembers() if not os.path.basename(m.name).startswith(".wh.")]
                if bad := [m.name for m in members if m.name.startswith("/") or ".." in m.name.split("/")]:
                    raise ValueError(f"{archive}: {layer}: member outside the root: {bad[0]!r}")
                # fully trusted: the image's absolute symlinks (to /etc/...) point into the root once chrooted
                tar.extractall(root, members=members, filter="fully_trusted")


def pyc_modes(root: Path, top: str) -> dict[str, int]:
    """How many ``.pyc`` under ``top`` are timestamp, checked-hash or unchecked-hash (PEP 552 flags)."""
    counts = {"timestamp": 0, "checked-hash": 0, "unchecked-hash": 0}
    for pyc in (root / top.lstrip("/")).rglob("*.pyc"):
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        counts["timestamp" if not flags & 1 else "checked-hash" if flags & 2 else "unchecked-hash"] += 1
    return counts


def in_root(root: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(root), *argv], env=ENV, capture_output=True, text=True, check=True)


# What checked-hash byte code adds to each import, measured alone: read the module's source and hash it.
HASH_WORK = """
import importlib.util, sys, time
{code}
files = [m.__spec__.origin for m in list(sys.modules.values())
         if getattr(m, "__spec__", None) and m.__spec__.cached and (m.__spec__.origin or "").endswith(".py")]
best = size = 0
for i in range(5):
    t, size = time.process_time(), 0
    for f in files:
        with open(f, "rb") as src:
            data = src.read()
        importlib.util.source_hash(data)
        size += len(data)
    best = min(best, time.process_time() - t) if i else time.process_time() - t
print(len(files), size, best)
"""


def hash_work(root: Path, code: str) -> tuple[int, int, float]:
    """(modules, source bytes, CPU seconds) of reading and hashing the sources of what ``code`` imports."""
    n, size, seconds = in_root(root, [PYTHON, "-c", HASH_WORK.format(code=code)]).stdout.split()
    return int(n), int(size), float(seconds)


def cpu_seconds(root: Path, code: str) -> float:
    proc = subprocess.Popen(["chroot", str(root), PYTHON, "-c", code], env=ENV, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{code!r} in {root} exited {os.waitstatus_to_exitcode(status)}")
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--archive", type=Path, default=default_images_dir() / "ironlb.tar")
    parser.add_argument("commands", nargs="*", metavar="COMMAND", help=f"of {', '.join(COMMANDS)} (default: all)")
    args = parser.parse_args(argv)
    args.commands = args.commands or list(COMMANDS)
    if unknown := set(args.commands) - set(COMMANDS):
        parser.error(f"unknown command(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="image-pyc.") as tmp:
        roots = {name: Path(tmp) / f"root{i}" for i, name in enumerate(VARIANTS)}
        first = next(iter(roots.values()))
        extract(args.archive, first)
        for name, root in roots.items():
            if root != first:
                shutil.copytree(first, root, symlinks=True)
            tops = [t for t in VARIANTS[name] if (root / t.lstrip("/")).is_dir()]
            if tops:
                in_root(root, [PYTHON, "-m", "compileall", "-q", "-f", "--invalidation-mode", "unchecked-hash",
                               *tops])
            print(f"{name}: /opt/ironlb/lib {pyc_modes(root, '/opt/ironlb/lib')}, "
                  f"/usr/lib/python3.11 {pyc_modes(root, '/usr/lib/python3.11')}")
        figures: dict[tuple[str, str], list[float]] = {(c, v): [] for c in args.commands for v in roots}
        for _ in range(args.runs):  # interleaved, so that a change in the machine's load hits every variant alike
            for command in args.commands:
                for name, root in roots.items():
                    figures[command, name].append(cpu_seconds(root, COMMANDS[command]) * 1000)
        work = {c: hash_work(first, COMMANDS[c]) for c in args.commands}
    print(f"{args.runs} runs, {args.archive}, load average {os.getloadavg()[0]:.1f}")
    for (command, name), ms in figures.items():
        print(f"  {command:8} {name:32} CPU p50 {percentile(ms, 50):4.0f} ms (min {min(ms):.0f}, max {max(ms):.0f})")
    for command, (n, size, seconds) in work.items():
        print(f"  {command:8} checked-hash work alone: {n} modules' sources, {size >> 10} KiB read and hashed in "
              f"{seconds * 1000:.1f} ms of CPU (best of 5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
