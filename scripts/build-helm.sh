#!/usr/bin/env bash
# Builds the `helm` command that tests/chart runs (`helm lint`, `helm template`) from the Go module proxy, into a
# cache directory outside the work tree:
#
#   ${IRONLB_CACHE:-$HOME/.cache/ironlb}/helm/helm-<HELM_VERSION>/bin/helm
#
# No registry here ships a helm binary, but the module proxy serves helm.sh/helm/v4, whose go.mod has no `replace`,
# so `go install helm.sh/helm/v4/cmd/helm@VERSION` builds it as it is. A binary that is already there is reused
# (instant); the Go build and module caches live in the cache directory too. Cold (empty caches), niced on the 2-core
# machine with other work on it (load average ~17): 704 s wall, 248 s user + 53 s sys CPU, 1.0 GB peak RSS; a
# 64 MiB binary. Prints the binary's path on stdout
# (last line); `build-helm.sh --path` only prints it. IRONLB_HELM_VERSION overrides the version below.
# Never commit a binary: nothing here writes into the work tree.
set -euo pipefail
HELM_VERSION=${IRONLB_HELM_VERSION:-v4.3.2}

cache="${IRONLB_CACHE:-$HOME/.cache/ironlb}/helm"
bin="$cache/helm-$HELM_VERSION/bin"

if [ "${1:-}" = "--path" ]; then   # where the binary is (or would be), without building
  echo "$bin/helm"
  exit 0
fi
if [ -x "$bin/helm" ]; then
  echo "build-helm: reusing helm $HELM_VERSION in $bin" >&2
  echo "$bin/helm"
  exit 0
fi

# The machine image installs Go in /usr/local/go; a non-login shell may not have it on PATH.
command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "build-helm: the Go toolchain (>= 1.26, for helm $HELM_VERSION) is needed" >&2; exit 1; }

export GOCACHE="$cache/go-build"
export GOMODCACHE="$cache/gomod"
export GOFLAGS="-buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
mkdir -p "$bin" "$GOCACHE" "$GOMODCACHE"

start=$(date +%s)
echo "build-helm: building helm $HELM_VERSION" >&2
work="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# helm prints its version from these (its Makefile sets them the same way).
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
rc=0
GOBIN="$work" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" 2>&1 \
  | { grep -v '^go: downloading' || true; } >&2 || rc=$?
[ "$rc" = 0 ] || exit "$rc"
mv "$work/helm" "$bin/helm"
end=$(date +%s)
echo "build-helm: built in $((end - start)) s: $(du -m "$bin/helm" | cut -f1) MiB" >&2
"$bin/helm" version --short >&2
echo "$bin/helm"
