#!/usr/bin/env bash
# Everything ironlb's tests and demo need on a fresh Debian 12 machine: system packages (as root) and a
# virtualenv in .venv with ironlb installed editable plus the test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(iproute2 arping ndisc6 nftables tcpdump procps frr frr-pythontools bird2 gobgpd curl ca-certificates openssl python3-venv
              containerd runc containernetworking-plugins iptables debootstrap)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # arping and iputils-arping conflict on some releases: install what can be had, then check the binaries.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || \
    for pkg in "${missing[@]}"; do apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 || true; done
  # FRR, BIRD and containerd are started by the tests in their own namespaces only: keep the system daemons off.
  for svc in frr bird gobgpd containerd; do systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true; done
fi
for bin in ip arping ndisc6; do
  command -v "$bin" >/dev/null || { echo "setup: $bin is missing after install" >&2; exit 1; }
done

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup: done"
