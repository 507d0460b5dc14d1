"""A private control plane for this directory's kube tests: a webhook registered there sees every request, so it
must not sit in the session's shared control plane."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kube.conftest import _bin_dir
from tests.kube.controlplane import ControlPlane


@pytest.fixture(scope="module")
def webhook_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane.start(_bin_dir(), tmp_path_factory.mktemp("kube-webhooks"))
    try:
        yield cp
    finally:
        cp.stop()
