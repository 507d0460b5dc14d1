#!/usr/bin/env bash
# Builds the `helm` command that tests/chart runs (`helm lint`, `helm template`) from the Go module proxy with
# scripts/build-go-tool.sh, into ${IRONLB_CACHE:-$HOME/.cache/ironlb}/helm/helm-<VERSION>/bin/helm (reused when there).
#
# No registry here ships a helm binary, but the module proxy serves helm.sh/helm/v4, whose go.mod has no `replace`,
# so `go install helm.sh/helm/v4/cmd/helm@VERSION` builds it as it is. Cold (empty caches), niced on the 2-core
# machine with other work on it (load average ~17): 704 s wall, 248 s user + 53 s sys CPU, 1.0 GB peak RSS; a
# 64 MiB binary. Prints the binary's path on stdout (last line); `build-helm.sh --path` only prints it.
# IRONLB_HELM_VERSION overrides the version below.
set -euo pipefail
HELM_VERSION=${IRONLB_HELM_VERSION:-v4.3.2}
path=()
if [ "${1:-}" = "--path" ]; then path=(--path); fi
# helm prints its version from this variable (its Makefile sets it the same way).
exec "$(dirname "$0")/build-go-tool.sh" "${path[@]}" helm "$HELM_VERSION" helm.sh/helm/v4/cmd/helm \
  --ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" --version-args "version --short"
