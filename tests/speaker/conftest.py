"""Fixtures for ``ironlb speaker`` end-to-end tests: the shared control plane and a :class:`SpeakerEnv`
(three speaker nodes, a client and an FRR router in network namespaces, the controller on the host)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from ironlb.lab.frr import frr_missing
from ironlb.lab.netns import netns_available
from tests.support.controlplane import ControlPlane
from tests.support.kube_fixtures import control_plane  # noqa: F401 - fixture re-exported for this directory
from tests.support.speaker_env import SpeakerEnv


def _skip_reason() -> str | None:
    return netns_available() or frr_missing(("zebra", "bgpd")) or (None if shutil.which("arping") else "needs arping")


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeakerEnv]:  # noqa: F811
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    e = SpeakerEnv(control_plane, tmp_path_factory.mktemp("speaker")).start()
    try:
        e.wait_speakers_ready()
        yield e
    finally:
        e.close()
