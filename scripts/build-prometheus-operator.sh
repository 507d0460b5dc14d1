#!/usr/bin/env bash
# Builds the Prometheus Operator that tests/kube/test_prometheus_operator.py runs against the test apiserver (it turns
# the chart's ServiceMonitor, PodMonitor and PrometheusRule into the Prometheus configuration and rule files a user's
# Prometheus gets) from the Go module proxy with scripts/build-go-tool.sh, into
# ${IRONLB_CACHE:-$HOME/.cache/ironlb}/prometheus-operator/prometheus-operator-<VERSION>/bin/prometheus-operator
# (reused when there).
#
# The module's go.mod replaces its pkg/apis/monitoring and pkg/client submodules with their directories, so `go
# install` refuses it: build-go-tool.sh --module builds it in a throwaway module that requires it, with the
# submodules at the version its go.mod requires (the same source). Same version as the CRDs of
# scripts/fetch-prometheus-operator-crds.sh (v0.85.0, the newest the proxy serves of the main module), and its module
# cache. Prints the binary's path on stdout (last line); `--path` only prints it. IRONLB_PROMETHEUS_OPERATOR_VERSION
# overrides the version (the CRDs' variable: the two go together).
set -euo pipefail
VERSION=${IRONLB_PROMETHEUS_OPERATOR_VERSION:-v0.85.0}
MODULE=github.com/prometheus-operator/prometheus-operator
path=()
if [ "${1:-}" = "--path" ]; then path=(--path); fi
# The operator prints its version from prometheus/common's version package (its Makefile sets it so).
exec "$(dirname "$0")/build-go-tool.sh" "${path[@]}" prometheus-operator "$VERSION" "$MODULE/cmd/operator" \
  --module "$MODULE" --ldflags "-X github.com/prometheus/common/version.Version=${VERSION#v}"
