#!/usr/bin/env bash
# Fetches the Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule, ...) that
# tests/kube/test_monitoring_crds.py installs into a real apiserver to check the chart's monitoring objects
# against their schemas, from the Go module proxy, into a cache directory outside the work tree:
#
#   ${IRONLB_CACHE:-$HOME/.cache/ironlb}/prometheus-operator/crds-<VERSION>/monitoring.coreos.com_*.yaml
#
# No registry here ships the CRDs alone, but the operator's main module github.com/prometheus-operator/
# prometheus-operator carries them in example/prometheus-operator-crd/, so `go mod download` of it (a zip, nothing
# is built or run) gives them. v0.85.0 is the version the proxy serves of that module (its later tags are only
# served for the pkg/apis submodule, which has no CRD files). Files already there are reused (instant). Prints the
# directory on stdout (last line); `--path` only prints it. IRONLB_PROMETHEUS_OPERATOR_VERSION overrides the version.
# Never commit the CRDs: nothing here writes into the work tree.
set -euo pipefail
VERSION=${IRONLB_PROMETHEUS_OPERATOR_VERSION:-v0.85.0}
MODULE=github.com/prometheus-operator/prometheus-operator

cache="${IRONLB_CACHE:-$HOME/.cache/ironlb}/prometheus-operator"
out="$cache/crds-$VERSION"

if [ "${1:-}" = "--path" ]; then   # where the CRDs are (or would be), without fetching
  echo "$out"
  exit 0
fi
if [ -f "$out/.complete" ]; then
  echo "fetch-prometheus-operator-crds: reusing $VERSION in $out" >&2
  echo "$out"
  exit 0
fi

# The machine image installs Go in /usr/local/go; a non-login shell may not have it on PATH.
command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "fetch-prometheus-operator-crds: the Go toolchain is needed" >&2; exit 1; }

export GOMODCACHE="$cache/gomod"
export GOFLAGS="-modcacherw"   # the module cache can be deleted with rm -rf
export GOTOOLCHAIN=local
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
mkdir -p "$cache"
start=$(date +%s)
# Outside any module: `go mod download` then fetches just this one (its dependencies are not needed).
dir=$(cd "$cache" && go mod download -json "$MODULE@$VERSION" \
  | python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])')
src="$dir/example/prometheus-operator-crd"
ls "$src"/monitoring.coreos.com_*.yaml >/dev/null
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$src"/monitoring.coreos.com_*.yaml "$out.tmp/"
touch "$out.tmp/.complete"
rm -rf "$out"
mv "$out.tmp" "$out"
end=$(date +%s)
echo "fetch-prometheus-operator-crds: $VERSION in $((end - start)) s: $(ls "$out" | wc -l) CRDs, $(du -sh "$out" | cut -f1)" >&2
echo "$out"
