"""Suite-wide rules. In CI (``CI=true``) a skipped test fails: every test must be able to run there, because
``make test`` installs everything the suite needs (README). Locally, tests that need root, network namespaces or
the kube binaries skip with the reason instead.

Hypothesis runs without its per-example deadline (200 ms by default): on a loaded machine (CI, parallel work) one
slow example fails a property test that holds (``FlakyFailure: Unreliable test timings``); timings belong in
bench/, not in tests."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from hypothesis import settings

settings.register_profile("ironlb", deadline=None)
settings.load_profile("ironlb")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped in CI, which must run every test: {reason}"
