"""The `promtool` binary for the alert tests: scripts/build-promtool.sh builds it into ~/.cache/ironlb (``make
test`` runs it first). Without it the tests that need it skip, except under CI (CI=true), where a missing build is
an error."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.controlplane import REPO

BUILD = REPO / "scripts" / "build-promtool.sh"


def promtool_binary() -> str:
    """The path of the built promtool, or skip (fail in CI) saying how to build it."""
    path = Path(subprocess.run([str(BUILD), "--path"], check=True, capture_output=True, text=True).stdout.strip())
    if not os.access(path, os.X_OK):
        missing = f"promtool is not built ({path}): run scripts/build-promtool.sh (make test does)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return str(path)
