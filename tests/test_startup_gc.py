"""The cyclic GC at start-up (issue 16, fast start): ``ironlb run`` and ``ironlb speaker`` collect nothing while
they import, then :func:`ironlb.runtime.tune_gc` freezes the heap and turns the collector back on, with its
long-running thresholds; a command line refused before that leaves the collector on. Each check runs in a new
interpreter: freezing or disabling the GC would otherwise change the test process itself."""

from __future__ import annotations

import os
import subprocess
import sys


def _run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "METALLB_NODE_NAME"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_tune_gc_after_a_paused_start_freezes_without_collecting_and_turns_the_collector_on() -> None:
    out = _run(
        "import gc\n"
        "gc.disable()\n"
        "from ironlb.runtime import tune_gc\n"
        "runs = []\n"
        "gc.callbacks.append(lambda phase, info: runs.append(info['generation']) if phase == 'start' else None)\n"
        "tune_gc()\n"
        "print(gc.isenabled(), gc.get_threshold(), runs, gc.get_freeze_count() > 0)\n"
    )
    assert out == "True (50000, 50, 100) [] True"


def test_tune_gc_with_the_collector_on_collects_the_young_generations_first() -> None:
    out = _run(
        "import gc\n"
        "from ironlb.runtime import tune_gc\n"
        "runs = []\n"
        "gc.callbacks.append(lambda phase, info: runs.append(info['generation']) if phase == 'start' else None)\n"
        "tune_gc()\n"
        "print(gc.isenabled(), runs)\n"
    )
    assert out == "True [1]"


def test_a_refused_run_or_speaker_command_line_leaves_the_collector_on() -> None:
    out = _run(
        "import contextlib, gc, io\n"
        "from ironlb.cli import main\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    codes = [main(['run', '--state', '/nonexistent/state', '--node', 'n1', '--fastpath', 'thread']),\n"
        "             main(['speaker', '--fastpath', 'thread'])]\n"
        "print(codes, gc.isenabled())\n"
    )
    assert out == "[2, 2] True"
