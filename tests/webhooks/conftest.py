"""A private control plane for this directory's kube tests: a webhook registered there sees every request, so it
must not sit in the session's shared control plane."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.kube_fixtures import bin_dir


@pytest.fixture(scope="module")
def webhook_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane.start(bin_dir(), tmp_path_factory.mktemp("kube-webhooks"))
    try:
        yield cp
    finally:
        cp.stop()
