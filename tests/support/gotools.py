"""The Go tools the tests run (helm, promtool): scripts/build-<name>.sh builds each into ~/.cache/ironlb (``make
test`` runs them first). Without one the tests that need it skip, except under CI (CI=true), where a missing build
is an error."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.controlplane import REPO


def built_tool(name: str) -> str:
    """The path of the built NAME (scripts/build-NAME.sh --path), or skip (fail in CI) saying how to build it."""
    build = REPO / "scripts" / f"build-{name}.sh"
    path = Path(subprocess.run([str(build), "--path"], check=True, capture_output=True, text=True).stdout.strip())
    if not os.access(path, os.X_OK):
        missing = f"{name} is not built ({path}): run scripts/build-{name}.sh (make test does)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return str(path)


def helm_binary() -> str:
    """helm for the chart and manifest tests (`helm lint`, `helm template`)."""
    return built_tool("helm")


def promtool_binary() -> str:
    """promtool for the chart's alert tests (`promtool check rules`, `promtool test rules`)."""
    return built_tool("promtool")


def prometheus_operator_crds() -> Path:
    """The directory of the Prometheus Operator's CRDs (scripts/fetch-prometheus-operator-crds.sh), or skip (fail
    in CI) saying how to fetch them."""
    script = REPO / "scripts" / "fetch-prometheus-operator-crds.sh"
    path = Path(subprocess.run([str(script), "--path"], check=True, capture_output=True, text=True).stdout.strip())
    if not (path / ".complete").is_file():
        missing = f"the Prometheus Operator CRDs are not fetched ({path}): run {script.name} (make test does)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return path


def prometheus_binary() -> str:
    """The Prometheus server for the real-scrape test (scripts/build-prometheus.sh)."""
    return built_tool("prometheus")


def prometheus_operator_binary() -> str:
    """The Prometheus Operator for the test that has it reconcile the chart's monitors
    (scripts/build-prometheus-operator.sh)."""
    return built_tool("prometheus-operator")
