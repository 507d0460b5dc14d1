"""Test-side name for the namespace helpers, which live in the product for ``ironlb demo``, and the lab a netns
test starts from."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from ironlb.lab.netns import DEFAULT_SYSCTLS, NetnsLab, netns_available

__all__ = ["DEFAULT_SYSCTLS", "NetnsLab", "fresh_lab", "netns_available"]


@contextlib.contextmanager
def fresh_lab(*missing: str | None, prefix: str | None = None) -> Iterator[NetnsLab]:
    """A fresh lab, cleaned up (processes, then namespaces) whatever happens inside. Skips the test (a failure in
    CI, see tests/conftest.py) when namespaces are not available or ``missing`` gives a reason: the tools the test
    needs, each checked by the caller (None when there)."""
    reason = netns_available() or next((m for m in missing if m), None)
    if reason:
        pytest.skip(reason)
    lab = NetnsLab(prefix)
    try:
        yield lab
    finally:
        lab.cleanup()
