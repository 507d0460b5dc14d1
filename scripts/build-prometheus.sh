#!/usr/bin/env bash
# Builds the `prometheus` server that tests/kube/test_prometheus_scrape.py runs against ironlb's HTTPS /metrics (a
# real scrape with a ServiceAccount token and the CA) from the Go module proxy with scripts/build-go-tool.sh, into
# ${IRONLB_CACHE:-$HOME/.cache/ironlb}/promtool/prometheus-<VERSION>/bin/prometheus (reused when there).
#
# Same module, version and tags as scripts/build-promtool.sh (github.com/prometheus/prometheus v0.316.0, i.e.
# Prometheus v3.16.0; remove_all_sd: the test scrapes static targets) and promtool's Go build and module caches
# (--cache promtool), so after promtool only prometheus's own packages compile: 308 s wall, 103 s user + 12 s sys
# CPU, 0.9 GB peak RSS, niced at load average 9-19 with promtool's cache warm; a 50 MiB binary. The web UI's assets
# are not built in (no `builtinassets` tag): the scrape loop and the HTTP API do not need them. Prints the binary's
# path on stdout (last line); `build-prometheus.sh --path` only prints it. IRONLB_PROMTOOL_VERSION overrides the
# version (promtool's variable: the two go together).
set -euo pipefail
VERSION=${IRONLB_PROMTOOL_VERSION:-v0.316.0}
path=()
if [ "${1:-}" = "--path" ]; then path=(--path); fi
# prometheus prints its version from prometheus/common's version package (Prometheus's Makefile sets it so).
exec "$(dirname "$0")/build-go-tool.sh" "${path[@]}" prometheus "$VERSION" \
  github.com/prometheus/prometheus/cmd/prometheus --tags remove_all_sd --cache promtool \
  --release-var github.com/prometheus/common/version.Version
