#!/usr/bin/env bash
# The quick start on examples/: validate the seed ConfigMap, convert it to CRDs, and plan my-service.
set -euo pipefail
cd "$(dirname "$0")/.."
IRONLB=.venv/bin/ironlb
set -x
$IRONLB validate examples/metallb-config.yaml
$IRONLB convert examples/metallb-config.yaml
$IRONLB plan examples/metallb-config.yaml examples/my-service.yaml
