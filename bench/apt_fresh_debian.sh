#!/usr/bin/env bash
# Times the apt part of scripts/setup.sh on a fresh Debian 12 root: the part a cold `make test` on this machine
# does not pay (its packages are installed here) but a CI machine starting from an installed Debian does
# (bench/RESULTS.md, "Cold CI"). Makes its own root with `debootstrap --variant=minbase` (timed, not part of CI)
# in a fresh directory under /tmp, runs the lines of scripts/setup.sh from `APT_PACKAGES=(` to their `fi` there in
# a chroot, timed with /usr/bin/time, RUNS times, each from the same just-debootstrapped root (empty apt lists and
# cache), and removes that root at the end (its mounts live in a namespace of their own and go with it).
# Root, debootstrap, unshare and the network needed; the host's own mounts and processes are left alone.
# Usage: bench/apt_fresh_debian.sh [RUNS]; with APT_FRESH_UNSAFE_IO=1 the root's dpkg is set to force-unsafe-io (no
# fsync per file: what throwaway CI machines and image builds often set; the apt part itself is unchanged).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
suite=bookworm
mirror=${IRONLB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${IRONLB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
[ "$(id -u)" -eq 0 ] || { echo "apt_fresh_debian: needs root (debootstrap, chroot)" >&2; exit 1; }

fragment=$(sed -n '/^APT_PACKAGES=(/,/^fi$/p' scripts/setup.sh)
grep -q 'apt-get install' <<<"$fragment" || { echo "apt_fresh_debian: no apt part found in scripts/setup.sh" >&2; exit 1; }

work=$(mktemp -d /tmp/ironlb-apt-fresh.XXXXXX)
root=$work/root
# The chroot's mounts (/proc, /sys, /dev) are made in a mount namespace of its own, and its processes run in a
# PID namespace of their own: no mount outlives a run, and a package's init script that stops "its" daemon by name
# cannot see, let alone stop, the FRR, BIRD or gobgpd of tests running on this host.
cleanup() {
  if findmnt -rn -o TARGET | grep -q "^$work"; then
    echo "apt_fresh_debian: something is mounted under $work: left in place" >&2
    return
  fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
namespaces=(unshare --pid --fork --mount --propagation private --)
in_root=("${namespaces[@]}" bash -c 'set -e; r=$1; shift; mount -t proc proc "$r/proc"; mount -t sysfs -o ro sysfs "$r/sys"
         mount --bind /dev "$r/dev"; mount --bind /dev/pts "$r/dev/pts"; exec chroot "$r" "$@"' in_root "$root")
rx_bytes() { awk -F'[: ]+' 'NR > 2 && $2 != "lo" { s += $3 } END { printf "%.0f\n", s }' /proc/net/dev; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

mkdir -p "$root"
echo "apt_fresh_debian: debootstrap --variant=minbase $suite $root $mirror"
rx0=$(rx_bytes)
/usr/bin/time -o "$work/debootstrap.time" -f "apt_fresh_debian: debootstrap: %e s wall, %U s user + %S s sys CPU, %M KiB peak RSS" \
  "${namespaces[@]}" debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
cat "$work/debootstrap.time"
echo "apt_fresh_debian: debootstrap: $(mib $(( $(rx_bytes) - rx0 ))) received by the host (all interfaces)"

# A Debian 12 machine's sources (bookworm, -updates, -security: the debian:12 image's, and this host's), no
# service started by a package's postinst (a chroot has no init), the host's resolver.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# apt-get found first on PATH: notes when each apt-get of the fragment starts and ends, then runs the real one.
cat >"$root/usr/local/sbin/apt-get" <<'EOF'
#!/bin/sh
echo "$(date +%s.%N) start apt-get $*" >>/var/log/apt-times
/usr/bin/apt-get "$@"
rc=$?
echo "$(date +%s.%N) end rc=$rc" >>/var/log/apt-times
exit $rc
EOF
chmod 755 "$root/usr/local/sbin/apt-get"
if [ "${APT_FRESH_UNSAFE_IO:-0}" = 1 ]; then
  echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/apt-fresh-unsafe-io"
  echo "apt_fresh_debian: dpkg set to force-unsafe-io"
fi
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
printf '%s\n' "$fragment" >"$root/root/apt-part.sh"
tar -C "$root" -cf "$work/pristine.tar" .
packages0=$(chroot "$root" dpkg-query -W | wc -l)

for ((run = 1; run <= runs; run++)); do
  if [ "$run" -gt 1 ]; then
    rm -rf --one-file-system "$root"
    mkdir "$root"
    tar -C "$root" -xf "$work/pristine.tar"
  fi
  rx0=$(rx_bytes)
  /usr/bin/time -f "apt_fresh_debian: run $run: %e s wall, %U s user + %S s sys CPU, %M KiB peak RSS" \
    "${in_root[@]}" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    bash -c 'set -euo pipefail; . /root/apt-part.sh; for bin in ip arping ndisc6; do command -v "$bin" >/dev/null || { echo "missing: $bin" >&2; exit 1; }; done'
  rx=$(( $(rx_bytes) - rx0 ))
  debs=$(find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -printf '%s\n' | awk '{ n++; s += $1 } END { printf "%d %.0f\n", n, s }')
  lists=$(du -sb "$root/var/lib/apt/lists" | cut -f1)
  packages=$(chroot "$root" dpkg-query -W | wc -l)
  echo "apt_fresh_debian: run $run: ${debs% *} packages downloaded, $(mib "${debs#* }") of .deb; apt lists $(mib "$lists");" \
       "$((packages - packages0)) packages installed ($packages0 before); $(mib "$rx") received by the host (all interfaces)"
  awk -v run="$run" '$2 == "start" { t = $1; $1 = $2 = ""; what = substr($0, 3) }
       $2 == "end" { printf "apt_fresh_debian: run %s:   %.1f s %s (%s)\n", run, $1 - t, what, $3 }' "$root/var/log/apt-times"
  sed -n 's/^\(Start-Date\|End-Date\): /apt_fresh_debian: run '"$run"':   dpkg (history.log) \1 /p' "$root/var/log/apt/history.log"
done
