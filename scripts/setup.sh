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

# Debian packages cannot be pinned (deb.debian.org keeps only the current version of each, snapshot.debian.org is
# not reachable: ironlb.lab.debian_versions): the versions of the packages above are recorded in
# requirements/debian-host.txt (`scripts/setup.sh --record-debian` writes it), and what moved since is reported.
host_record=requirements/debian-host.txt
host_versions() { dpkg-query -W -f='${Package} ${Version}\n' "${APT_PACKAGES[@]}" 2>/dev/null | LC_ALL=C sort || true; }
if [ "${1:-}" = "--record-debian" ]; then
  { echo "# The Debian packages of scripts/setup.sh as installed from deb.debian.org: written by"
    echo "# scripts/setup.sh --record-debian; setup reports the packages that moved since (the mirror cannot be pinned)."
    host_versions; } > "$host_record"
  echo "setup: recorded the versions of ${#APT_PACKAGES[@]} Debian packages in $host_record"
elif [ -f "$host_record" ]; then
  moved=$(LC_ALL=C join -a1 -a2 -e- -o 0,1.2,2.2 <(grep -v '^#' "$host_record" | LC_ALL=C sort) <(host_versions) \
          | awk '$2 != $3 { printf "%s%s %s -> %s", sep, $1, $2, $3; sep = "; " }')
  [ -z "$moved" ] || echo "setup: Debian packages that differ from $host_record (the mirror moved): $moved" >&2
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The versions of requirements/test.txt (scripts/lock-python.py writes it from pyproject.toml), each file checked
# against its sha256. The hashes are of CPython 3.11's files on Linux x86_64: elsewhere, the same versions unchecked.
# ironlb itself last, editable, built by the locked setuptools (no build isolation: nothing unpinned downloaded).
if .venv/bin/python -c 'import platform, sys; sys.exit(sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64"
                        or sys.implementation.name != "cpython" or sys.platform != "linux")'; then
  .venv/bin/python -m pip install -q --require-hashes -r requirements/test.txt
else
  echo "setup: the lock's hashes are for CPython 3.11 on Linux x86_64: installing its versions without them" >&2
  sed 's/ --hash=[^ ]*//g' requirements/test.txt > .venv/requirements-unhashed.txt
  .venv/bin/python -m pip install -q -r .venv/requirements-unhashed.txt
fi
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
echo "setup: done"
