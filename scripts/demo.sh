#!/usr/bin/env bash
# The main job: the quick start on examples/ (validate the seed ConfigMap, convert it to CRDs, plan my-service),
# then `ironlb demo`: the same seed example live on a LAN of three nodes in network namespaces, failover included.
set -euo pipefail
cd "$(dirname "$0")/.."
IRONLB=.venv/bin/ironlb
set -x
$IRONLB validate examples/metallb-config.yaml
$IRONLB convert examples/metallb-config.yaml
$IRONLB plan examples/metallb-config.yaml examples/my-service.yaml
{ set +x; } 2>/dev/null
if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: 'ironlb demo' builds network namespaces and needs root: run 'make demo' as root" >&2
    exit 1
fi
set -x
$IRONLB demo "$@"
