#!/usr/bin/env bash
# Builds the `promtool` command that tests/chart runs on the chart's PrometheusRule (`promtool check rules`,
# `promtool test rules`) from the Go module proxy with scripts/build-go-tool.sh, into
# ${IRONLB_CACHE:-$HOME/.cache/ironlb}/promtool/promtool-<VERSION>/bin/promtool (reused when there).
#
# Prometheus v3.x is published on the module proxy as github.com/prometheus/prometheus v0.3xx.y (v3.16.0 is
# v0.316.0), whose go.mod has no `replace`, so `go install .../cmd/promtool@VERSION` builds it as it is. The tag
# remove_all_sd leaves out the service-discovery plugins (AWS, Azure, GCE, ...) that promtool's rule commands never
# use: a smaller, faster build. Prints the binary's path on stdout (last line); `build-promtool.sh --path` only
# prints it. IRONLB_PROMTOOL_VERSION overrides the version below (a module version, v0.3xx.y).
set -euo pipefail
PROMTOOL_VERSION=${IRONLB_PROMTOOL_VERSION:-v0.316.0}
path=()
if [ "${1:-}" = "--path" ]; then path=(--path); fi
# promtool prints its version from prometheus/common's version package (Prometheus's Makefile sets it so).
exec "$(dirname "$0")/build-go-tool.sh" "${path[@]}" promtool "$PROMTOOL_VERSION" \
  github.com/prometheus/prometheus/cmd/promtool --tags remove_all_sd \
  --release-var github.com/prometheus/common/version.Version
