# `make test` and `make demo` do all set-up themselves on a fresh Debian 12 machine (run as root).
.PHONY: setup test lint unit demo bench clean k8s-binaries

VENV := .venv
PY := $(VENV)/bin/python

setup:
	./scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# kube-apiserver and etcd for tests/kube, built from the Go module proxy into ~/.cache/ironlb (reused when there).
k8s-binaries:
	./scripts/build-k8s.sh >/dev/null

test: setup lint k8s-binaries
	$(PY) -m pytest -q -p no:cacheprovider

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

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
