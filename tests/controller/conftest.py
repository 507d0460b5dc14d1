"""Fixtures for the controller's end-to-end tests: the shared control plane, a clean slate of Services, and
``ironlb controller`` run as a subprocess (what a restart really is)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.controller import ControllerProcess, delete_test_services
from tests.support.controlplane import ControlPlane
from tests.support.kube_fixtures import control_plane, namespace  # noqa: F401 - fixtures re-exported for this directory


@pytest.fixture
def clean(control_plane: ControlPlane) -> Iterator[None]:  # noqa: F811
    """No LoadBalancer Service of an earlier test is left to compete for addresses."""
    delete_test_services(control_plane)
    yield
    delete_test_services(control_plane)


@pytest.fixture
def controller(
    control_plane: ControlPlane, namespace: str, clean: None, tmp_path: Path  # noqa: F811
) -> Iterator[Callable[..., ControllerProcess]]:
    """A factory: ``controller(*extra_args, namespace=ns)`` starts ``ironlb controller`` and waits for /readyz."""
    started: list[ControllerProcess] = []

    def start(
        *args: str, ns: str | None = None, wait: bool = True, env: dict[str, str] | None = None
    ) -> ControllerProcess:
        proc = ControllerProcess(
            control_plane, ns or namespace, tmp_path / f"controller-{len(started)}.log", args, env=env
        )
        started.append(proc)
        proc.start(wait=wait)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(Exception):
            proc.stop()
