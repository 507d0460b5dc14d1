"""The end-to-end tests on a real Kubernetes cluster (src/ironlb/lab/kube_cluster.py): 3 kubelet nodes with
containerd, kube-proxy and CNI pod networking in network namespaces, ironlb installed with ``kubectl apply -f
config/manifests/ironlb.yaml``. One cluster per run (session fixtures); the tests run in file order and the last one
kills a node.

They run only when asked for (``pytest -m cluster``: ``make test-cluster``, and ``make test`` after the suite for
the files of the Makefile's CLUSTER_CI_TESTS; README, "The Kubernetes cluster lab"): other runs deselect them.
They need root, the binaries of ``scripts/build-k8s.sh --cluster`` and the images of ``scripts/build-images.py``;
without them they skip, except in CI where that fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from ironlb.lab.kube_cluster import KubeCluster, default_bin_dir, default_images_dir, missing_requirements
from ironlb.lab.kube_demo import install_ironlb
from tests.cluster.evidence import speaker_evidence


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the cluster tests unless the -m expression names them (they take minutes and a whole cluster).
    Selected, the modules with a cluster of their own run first, so it is stopped before the shared one starts
    (never two clusters at once on the machine)."""
    if "cluster" in (config.getoption("-m") or ""):
        own = [i for i in items if "own_cluster" in getattr(i.module, "__dict__", {})]
        items[:] = own + [i for i in items if i not in own]
        return
    keep = [i for i in items if i.get_closest_marker("cluster") is None]
    dropped = [i for i in items if i.get_closest_marker("cluster") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def start_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A fresh cluster (skipped, or failed in CI, when the lab's binaries or images are missing), stopped after."""
    bin_dir, images = default_bin_dir(), default_images_dir()
    problem = missing_requirements(bin_dir, images)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    assert bin_dir is not None
    cluster = KubeCluster.start(bin_dir, images, tmp_path_factory.mktemp("k8s", numbered=True))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    yield from start_cluster(tmp_path_factory)


@pytest.fixture(scope="session")
def ironlb_installed(kube_cluster: KubeCluster) -> KubeCluster:
    """``kubectl apply -f config/manifests/ironlb.yaml`` as a user runs it, then the controller and one speaker per
    node Ready (the time it took is in ``kube_cluster.timings["install"]``)."""
    install_ironlb(kube_cluster)
    return kube_cluster


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test on the shared cluster reports every speaker's log tail and its probes' notable lines
    (``evidence``): the cluster, and the logs with it, are gone when CI shows the failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    cluster = getattr(item, "funcargs", {}).get("ironlb_installed")
    if report.when != "call" or not report.failed or not isinstance(cluster, KubeCluster):
        return
    started = getattr(item, "_ironlb_started", 0.0)
    try:
        text = speaker_evidence(cluster, started)
    except Exception as exc:  # the evidence must not hide the failure it explains
        text = f"collecting the evidence failed: {type(exc).__name__}: {exc}"
    report.sections.append(("ironlb speakers and probes at the failure", text))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item._ironlb_started = time.time()  # type: ignore[attr-defined]  # the probe files written since are this test's
