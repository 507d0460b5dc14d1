# `make test` and `make demo` do all set-up themselves on a fresh Debian 12 machine (run as root).
.PHONY: setup test lint unit demo bench clean builds k8s-binaries helm-binary promtool-binary prometheus-binary prometheus-operator-binary monitoring-crds images k8s-cluster test-cluster demo-k8s

VENV := .venv
PY := $(VENV)/bin/python

# Targets that need the venv depend on `setup`; `builds` runs its targets in a sub-make after setting up once and
# tells it so (SETUP_DONE=1), so that `make test` and `make builds` run scripts/setup.sh once, not once per make.
setup:
ifndef SETUP_DONE
	./scripts/setup.sh
endif

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# kube-apiserver and etcd for tests/kube, built from the Go module proxy into ~/.cache/ironlb (reused when there).
k8s-binaries:
	./scripts/build-k8s.sh >/dev/null

# helm for tests/chart (lint, template) and scripts/render-manifests.py, built the same way (reused when there).
helm-binary:
	./scripts/build-helm.sh >/dev/null

# promtool for tests/chart/test_prometheus_rules.py (check and unit-test the chart's alerts), built the same way.
promtool-binary:
	./scripts/build-promtool.sh >/dev/null

# prometheus for tests/controller/test_prometheus_scrape.py (a real scrape of the secured /metrics), built the same
# way on promtool's Go caches, so after promtool-binary.
prometheus-binary: promtool-binary
	./scripts/build-prometheus.sh >/dev/null

# The Prometheus Operator for tests/kube/test_prometheus_operator.py (it turns the chart's monitors and rules into
# Prometheus configuration on a real apiserver), built the same way; its module cache is the CRDs' below.
prometheus-operator-binary:
	./scripts/build-prometheus-operator.sh >/dev/null

# The Prometheus Operator's CRDs for tests/kube/test_monitoring_crds.py (the chart's monitors and rules on a real
# apiserver), from the operator's module on the Go module proxy into ~/.cache/ironlb (nothing built; reused when there).
monitoring-crds:
	./scripts/fetch-prometheus-operator-crds.sh >/dev/null

# The cluster lab's images (ironlb from the Dockerfile on a debootstrap base, pause, http-echo) into ~/.cache/ironlb.
images: setup
	$(PY) scripts/build-images.py >/dev/null

# Everything the Kubernetes cluster lab needs (src/ironlb/lab/kube_cluster.py): kubelet, kube-proxy,
# kube-controller-manager, kube-scheduler and kubectl beside the above (after them: one build-k8s.sh at a time),
# and the images.
k8s-cluster: setup k8s-binaries images
	./scripts/build-k8s.sh --cluster >/dev/null

# What `make test` builds before pytest, BUILD_JOBS at a time: cold, each Go build keeps about 1.2 of 2 cores busy
# (its links and module downloads are single-threaded) and the images mostly wait on the Debian mirror and PyPI, so
# running them side by side shortens a cold run (bench/RESULTS.md, "Cold CI"); warm, each is reused in a second.
# Their output streams as it comes (the scripts' own lines start with their names), so a stopped run shows where.
BUILDS := k8s-binaries helm-binary promtool-binary prometheus-binary prometheus-operator-binary monitoring-crds images \
  k8s-cluster
BUILD_JOBS ?= 4
builds: setup
	$(MAKE) --no-print-directory -j$(BUILD_JOBS) --output-sync=none $(BUILDS) SETUP_DONE=1

# The end-to-end tests on a real 3-node cluster (README: "The Kubernetes cluster lab"). `make test` runs the files
# of CLUSTER_CI_TESTS, the ones with a record of clean consecutive runs; a new file joins them with such a record.
CLUSTER_CI_TESTS := tests/cluster/test_bgp_cluster.py tests/cluster/test_seed_cluster.py
# The Helm install brings up a cluster of its own, so it runs after the others' cluster is gone.
CLUSTER_CI_HELM_TESTS := tests/cluster/test_helm_cluster.py
test-cluster: setup k8s-cluster
	$(PY) -m pytest -q -p no:cacheprovider -m cluster tests/cluster

# The seed's workflow on that cluster, as a readable walkthrough, then teardown.
demo-k8s: setup k8s-cluster
	$(PY) -m ironlb.lab.kube_demo

test: setup lint builds
	$(PY) -m pytest -q -p no:cacheprovider
	$(PY) -m pytest -q -p no:cacheprovider -m cluster $(CLUSTER_CI_TESTS)
	$(PY) -m pytest -q -p no:cacheprovider -m cluster $(CLUSTER_CI_HELM_TESTS)

unit: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not netns"

demo: setup
	./scripts/demo.sh

# Every benchmark of bench/RESULTS.md (root: the network ones run in namespaces; the kube ones need the binaries).
bench: setup k8s-binaries
	$(PY) -m bench.ipam
	$(PY) -m bench.l2_failover --trials 20 --announce-trials 20
	$(PY) -m bench.bgp --runs 5
	$(PY) -m bench.bfd_failover --trials 15 --no-results
	$(PY) -m bench.controller
	$(PY) -m bench.speaker
	$(PY) -m bench.service_latency --services 1000
	$(PY) -m bench.membership_wire --nodes 50
	$(PY) -m bench.fastpath_metrics --trials 10
	$(PY) -m bench.validate --runs 3
	$(PY) -m bench.chaos

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
