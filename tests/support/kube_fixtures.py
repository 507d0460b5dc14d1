"""Fixtures for tests against a real control plane (etcd + kube-apiserver on loopback, see controlplane.py).
A directory's ``conftest.py`` imports the ones it uses, so each directory gets its own instance.

``control_plane`` is session-scoped: one etcd and one kube-apiserver per importing directory, with ironlb's metallb.io
CRDs installed. Tests share it, so each one works in its own Namespace (``namespace`` fixture) or with unique names.
The binaries are built by ``scripts/build-k8s.sh`` (``make test`` runs it first); without them the kube tests are
skipped, except under CI (CI=true), where a missing build is an error.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane, find_binaries


def bin_dir() -> Path:
    d = find_binaries()
    missing = None
    if shutil.which("openssl") is None:
        missing = "the kube tests need the openssl CLI"
    elif d is None:
        missing = "kube-apiserver/etcd are not built: run scripts/build-k8s.sh (make test does)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    assert d is not None
    return d


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver (dual-stack service ranges 10.96.0.0/12 and fd00:10:96::/112, RBAC, admin client
    cert) with the metallb.io CRDs installed. Attributes: ``kubeconfig`` (path), ``url``, ``ca_file``; methods:
    ``request/get/create/replace/patch/apply/delete/watch``, ``restart_apiserver()``, ``compact_etcd()``,
    ``expire_history()``. Tests that restart the apiserver share it with the rest of the session: they leave it
    running and serving on the same port."""
    cp = ControlPlane.start(bin_dir(), tmp_path_factory.mktemp("kube"))
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def make_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ControlPlane]]:
    """A factory for a private control plane (about 4 s to start), stopped after the test:
    ``make_control_plane(watch_cache=False, dual_stack=False, extra_apiserver_args=[...], install_crds=True)``."""
    started: list[ControlPlane] = []
    binaries = bin_dir()

    def make(**options: Any) -> ControlPlane:
        cp = ControlPlane.start(binaries, tmp_path_factory.mktemp("kube"), **options)
        started.append(cp)
        return cp

    try:
        yield make
    finally:
        for cp in started:
            cp.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    """A fresh Namespace for one test (left behind: without a namespace controller deletion never completes)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name
