#!/usr/bin/env bash
# Builds the `promtool` command that tests/chart runs on the chart's PrometheusRule (`promtool check rules`,
# `promtool test rules`) from the Go module proxy, into a cache directory outside the work tree:
#
#   ${IRONLB_CACHE:-$HOME/.cache/ironlb}/promtool/promtool-<VERSION>/bin/promtool
#
# Prometheus v3.x is published on the module proxy as github.com/prometheus/prometheus v0.3xx.y (v3.16.0 is
# v0.316.0), whose go.mod has no `replace`, so `go install .../cmd/promtool@VERSION` builds it as it is. The tag
# remove_all_sd leaves out the service-discovery plugins (AWS, Azure, GCE, ...) that promtool's rule commands never
# use: a smaller, faster build. A binary that is already there is reused (instant); the Go build and module caches
# live in the cache directory too. Prints the binary's path on stdout (last line); `build-promtool.sh --path` only
# prints it. IRONLB_PROMTOOL_VERSION overrides the version below (a module version, v0.3xx.y).
# Never commit a binary: nothing here writes into the work tree.
set -euo pipefail
PROMTOOL_VERSION=${IRONLB_PROMTOOL_VERSION:-v0.316.0}

cache="${IRONLB_CACHE:-$HOME/.cache/ironlb}/promtool"
bin="$cache/promtool-$PROMTOOL_VERSION/bin"

if [ "${1:-}" = "--path" ]; then   # where the binary is (or would be), without building
  echo "$bin/promtool"
  exit 0
fi
if [ -x "$bin/promtool" ]; then
  echo "build-promtool: reusing promtool $PROMTOOL_VERSION in $bin" >&2
  echo "$bin/promtool"
  exit 0
fi

# The machine image installs Go in /usr/local/go; a non-login shell may not have it on PATH.
command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "build-promtool: the Go toolchain (>= 1.26) is needed" >&2; exit 1; }

export GOCACHE="$cache/go-build"
export GOMODCACHE="$cache/gomod"
export GOFLAGS="-buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
mkdir -p "$bin" "$GOCACHE" "$GOMODCACHE"

start=$(date +%s)
echo "build-promtool: building promtool $PROMTOOL_VERSION" >&2
work="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# promtool prints its version from prometheus/common's version package (Prometheus's Makefile sets it so).
minor="${PROMTOOL_VERSION#v0.}"
minor="${minor%%.*}"                                     # v0.316.0: 316
release="3.$((10#$minor - 300)).${PROMTOOL_VERSION##*.}"  # v0.316.0: 3.16.0
ldflags="-s -w -X github.com/prometheus/common/version.Version=$release"
rc=0
GOBIN="$work" go install -trimpath -tags remove_all_sd -ldflags "$ldflags" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" 2>&1 \
  | { grep -v '^go: downloading' || true; } >&2 || rc=$?
[ "$rc" = 0 ] || exit "$rc"
mv "$work/promtool" "$bin/promtool"
end=$(date +%s)
echo "build-promtool: built in $((end - start)) s: $(du -m "$bin/promtool" | cut -f1) MiB" >&2
"$bin/promtool" --version 2>&1 | head -1 >&2
echo "$bin/promtool"
