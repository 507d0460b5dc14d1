"""The Makefile's targets as CI runs them: `make -n` prints what each would run, without running it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def dry_run(target: str) -> list[str]:
    """The commands `make TARGET` would run, sub-makes included (make runs a `$(MAKE)` line even with -n)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SETUP_DONE")}
    out = subprocess.run(["make", "-n", "--no-print-directory", target], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return out.splitlines()


@pytest.mark.parametrize("target", ["test", "builds", "images", "k8s-cluster", "lint"])
def test_setup_runs_once(target: str) -> None:
    """`make test` sets up in its own make and again in the sub-make of `builds` unless told it is done."""
    runs = [line for line in dry_run(target) if "scripts/setup.sh" in line]
    assert len(runs) == 1, f"make {target} runs setup {len(runs)} times: {runs}"
