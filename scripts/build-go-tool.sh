#!/usr/bin/env bash
# Builds one Go command from the Go module proxy (`go install PACKAGE@VERSION`) into a cache directory outside the
# work tree, for the tools the tests run (scripts/build-helm.sh, scripts/build-promtool.sh say which and why):
#
#   ${IRONLB_CACHE:-$HOME/.cache/ironlb}/<CACHE>/<NAME>-<VERSION>/bin/<NAME>      (CACHE is NAME unless --cache)
#
# with the Go build and module caches beside it (<CACHE>/go-build, <CACHE>/gomod). A binary that is already there is
# reused (instant). Prints the binary's path on stdout (last line); with --path first it only prints it.
# Never commit a binary: nothing here writes into the work tree.
#
# usage: build-go-tool.sh [--path] NAME VERSION PACKAGE [--ldflags FLAGS] [--tags TAGS] [--version-args "ARGS"]
#                         [--cache CACHE] [--release-var VAR] [--module MODULE]
#   NAME          the binary's name (and its cache directory)
#   VERSION       a module version (vX.Y.Z)
#   PACKAGE       the Go package of the command, without @VERSION
#   --ldflags     go install -ldflags (-s -w is always added)
#   --tags        go install -tags
#   --version-args what the built binary is run with to print its version (logged on stderr)
#   --cache       the cache directory's name, to share another tool's Go caches (two commands of one module)
#   --release-var the Go variable (package path.name) the command prints its version from, set with -X to the
#                 release VERSION stands for: X.Y.Z for vX.Y.Z, but M.NN.P for v0.MNN.P (Prometheus v3.x is
#                 published on the module proxy as v0.3xx.y: v0.316.0 is release 3.16.0)
#   --module      PACKAGE's module: build it in a throwaway module that requires MODULE@VERSION instead of with
#                 `go install PACKAGE@VERSION`, which refuses a module whose go.mod has `replace` directives. Those
#                 are then ignored (a dependency's replaces never apply), so this only suits replaces that point at
#                 modules the proxy serves at the versions the go.mod requires (the Prometheus Operator's point at
#                 its own pkg/apis and pkg/client submodules); every other version is the module's own (Go's minimal
#                 version selection from its go.mod alone).
set -euo pipefail

path_only=0
if [ "${1:-}" = "--path" ]; then path_only=1; shift; fi
[ $# -ge 3 ] || { echo "usage: build-go-tool.sh [--path] NAME VERSION PACKAGE [--ldflags F] [--tags T] [--version-args A] [--cache C] [--release-var V] [--module M]" >&2; exit 2; }
name=$1 version=$2 package=$3
shift 3
ldflags="" tags="" version_args="--version" cache_name=$name release_var="" module=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ldflags) ldflags=$2; shift 2 ;;
    --tags) tags=$2; shift 2 ;;
    --version-args) version_args=$2; shift 2 ;;
    --cache) cache_name=$2; shift 2 ;;
    --release-var) release_var=$2; shift 2 ;;
    --module) module=$2; shift 2 ;;
    *) echo "build-go-tool: unknown option $1" >&2; exit 2 ;;
  esac
done

cache="${IRONLB_CACHE:-$HOME/.cache/ironlb}/$cache_name"
bin="$cache/$name-$version/bin"

if [ "$path_only" = 1 ]; then   # where the binary is (or would be), without building
  echo "$bin/$name"
  exit 0
fi
if [ -x "$bin/$name" ]; then
  echo "build-$name: reusing $name $version in $bin" >&2
  echo "$bin/$name"
  exit 0
fi

# The machine image installs Go in /usr/local/go; a non-login shell may not have it on PATH.
command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "build-$name: the Go toolchain (>= 1.26, for $name $version) is needed" >&2; exit 1; }

export GOCACHE="$cache/go-build"
export GOMODCACHE="$cache/gomod"
export GOFLAGS="-buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
mkdir -p "$bin" "$GOCACHE" "$GOMODCACHE"

if [ -n "$release_var" ]; then
  release=${version#v}
  if [[ $release =~ ^0\.([0-9])([0-9]{2})\.([0-9]+)$ ]]; then  # v0.316.0: 3.16.0
    release="${BASH_REMATCH[1]}.$((10#${BASH_REMATCH[2]})).${BASH_REMATCH[3]}"
  fi
  ldflags="${ldflags:+$ldflags }-X $release_var=$release"
fi

start=$(date +%s)
echo "build-$name: building $name $version" >&2
work="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
flags=(-trimpath -ldflags "-s -w${ldflags:+ $ldflags}")
[ -z "$tags" ] || flags+=(-tags "$tags")
rc=0
if [ -z "$module" ]; then
  GOBIN="$work" go install "${flags[@]}" "$package@$version" 2>&1 \
    | { grep -v '^go: downloading' || true; } >&2 || rc=$?
else
  mkdir "$work/src"
  printf 'module ironlb.invalid/build/%s\n\ngo 1.24\n' "$name" >"$work/src/go.mod"
  (cd "$work/src" && go get "$package@$version" && go build -o "$work/$name" "${flags[@]}" "$package") 2>&1 \
    | { grep -v -E '^go: (downloading|added|upgraded)' || true; } >&2 || rc=$?
fi
[ "$rc" = 0 ] || exit "$rc"
mv "$work/$name" "$bin/$name"
end=$(date +%s)
echo "build-$name: built in $((end - start)) s: $(du -m "$bin/$name" | cut -f1) MiB" >&2
# sed reads all of it: `head -1` would exit first and the SIGPIPE would fail the build under pipefail.
# shellcheck disable=SC2086  # the version arguments are words
"$bin/$name" $version_args 2>&1 | sed -n 1p >&2
echo "$bin/$name"
