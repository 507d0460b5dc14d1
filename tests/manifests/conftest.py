"""Shared by the manifest tests: the bundle's documents, the render script as a module, and a private control
plane without CRDs (the bundle must install everything itself)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.controlplane import REPO, ControlPlane

BUNDLE = REPO / "config" / "manifests" / "ironlb.yaml"
SCRIPT = REPO / "scripts" / "render-manifests.py"


def render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_manifests", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(**options: Any) -> str:
    """A fresh render of the bundle (`helm template` of charts/ironlb, see scripts/render-manifests.py)."""
    from tests.support.gotools import helm_binary

    text: str = render_module().render(helm_bin=helm_binary(), **options)
    return text


def documents(text: str | None = None) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(BUNDLE.read_text() if text is None else text) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise AssertionError(f"no {kind} {name}")


@pytest.fixture(scope="module")
def bare_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    from tests.support.kube_fixtures import bin_dir

    cp = ControlPlane.start(bin_dir(), Path(tmp_path_factory.mktemp("kube-manifests")), install_crds=False)
    try:
        yield cp
    finally:
        cp.stop()
