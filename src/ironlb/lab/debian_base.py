"""Local substitutes for the base images a Dockerfile names, built with debootstrap (no registry here).

The project's Dockerfile starts ``FROM python:3.11-slim-bookworm``. That image comes from Docker Hub, which the
lab cannot reach, so the lab builds a stand-in from the same distribution: Debian 12 "bookworm" ``minbase`` with
Debian's Python 3.11 (``python3.11``, the ``venv`` module, ``python`` on PATH through ``python-is-python3``) and
``ca-certificates``. Same Debian release, same Python minor version, same PATH and CMD; the differences from the
official image: Python is Debian's build in /usr/bin (3.11.2 plus Debian's patches) rather than a source build in
/usr/local, and its configuration does not set ``LANG`` or the ``PYTHON_*`` variables (Python coerces the C locale
to UTF-8 by itself). As in Debian's own slim images, dpkg leaves out documentation, manuals and translations, and
apt removes the packages it downloaded.

The root is built once and cached under ``${IRONLB_CACHE:-~/.cache/ironlb}/base/<image>-<key>`` (its directory and
its layer tar), the key being a digest of everything that goes into it (release, mirror, packages, the steps of
this module). Nothing of it goes into the work tree.

Reproducible: debootstrap runs with ``SOURCE_DATE_EPOCH``; what would still differ from one build to the next is
removed or normalised before the layer is written (logs, ldconfig's auxiliary cache, a machine-id, the password
ages in /etc/shadow, dpkg's and debconf's ``-old`` copies), the byte code is recompiled hash-checked (valid
whatever the mtimes), and the layer's mtimes are clamped to the epoch. The same packages give the same layer
digest; a newer package on the mirror gives a new one (the mirror is not pinned to a snapshot).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ironlb.lab.dockerfile import DockerfileError, Instruction
from ironlb.lab.imagebuild import DEFAULT_EPOCH, DEFAULT_PATH, BaseImage, Image, Layer, run_in_root, write_rootfs_layer

RECIPE_VERSION = 2  # bump when the steps below change what the root contains
MIRROR = os.environ.get("IRONLB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("IRONLB_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")

# What dpkg does not install, and what apt deletes after installing: Debian's slim images do the same.
DPKG_EXCLUDES = """\
# ironlb.lab.debian_base: a slim image keeps no documentation, manuals or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
"""
_RM_CACHES = "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"
APT_CLEAN = f"""\
// ironlb.lab.debian_base: no downloaded packages or package caches are left in the image.
DPkg::Post-Invoke {{ "{_RM_CACHES}"; }};
APT::Update::Post-Invoke {{ "{_RM_CACHES}"; }};
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Install-Recommends "false";
"""


@dataclass(frozen=True)
class Substitute:
    """How to make a local stand-in for one registry image."""

    image: str
    suite: str
    packages: tuple[str, ...]
    config: dict[str, object]

    def key(self) -> str:
        recipe = {"v": RECIPE_VERSION, "image": self.image, "suite": self.suite, "packages": self.packages,
                  "mirror": MIRROR, "security": SECURITY_MIRROR, "dpkg": DPKG_EXCLUDES, "apt": APT_CLEAN,
                  "config": self.config, "epoch": DEFAULT_EPOCH}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]

    def dir_name(self) -> str:
        return "".join(c if c.isalnum() or c in ".-" else "_" for c in self.image) + "-" + self.key()


SUBSTITUTES = {
    s.image: s
    for s in [
        Substitute(
            image="python:3.11-slim-bookworm",
            suite="bookworm",
            # python3-distutils provides python3.11-distutils, which python3.11-venv needs and debootstrap's
            # resolver does not find by itself.
            packages=("python3.11", "python3.11-venv", "python3-distutils", "python-is-python3", "ca-certificates"),
            config={"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["python3"], "WorkingDir": "/"},
        ),
    ]
}


def cache_dir() -> Path:
    return Path(os.environ.get("IRONLB_CACHE", Path.home() / ".cache" / "ironlb"))


def resolver(cache: Path | None = None, log: Callable[[str], None] = lambda _m: None,
             refresh: bool = False) -> Callable[[str, Instruction], BaseImage]:
    """A ``BaseResolver`` for ``ironlb.lab.imagebuild.Builder``: the substitutes above, built on first use."""

    def resolve(name: str, ins: Instruction) -> BaseImage:
        sub = SUBSTITUTES.get(name)
        if sub is None:
            raise ins.error(f"no local substitute for the image {name!r} (the lab has no registry); known: "
                            f"{', '.join(sorted(SUBSTITUTES))}")
        return BaseImage(dict(sub.config), lambda: base_image(sub, cache or cache_dir(), log, refresh))

    return resolve


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def base_image(sub: Substitute, cache: Path, log: Callable[[str], None] = lambda _m: None,
               refresh: bool = False) -> Image:
    """The substitute's root and layer, built now unless the cache has them (``refresh`` rebuilds)."""
    top = cache / "base"
    final = top / sub.dir_name()
    with _locked(top / ".lock"):
        meta = final / "image.json"
        if refresh and final.exists():
            shutil.rmtree(final)
        if not meta.is_file():
            if final.exists():
                shutil.rmtree(final)  # an interrupted build
            _build(sub, top, final, log)
        info = json.loads(meta.read_text())
    layer = Layer(final / "layer.tar", info["diff_id"], info["created_by"])
    return Image(final / "rootfs", [layer], dict(sub.config), [{"created_by": info["created_by"]}])


def _build(sub: Substitute, top: Path, final: Path, log: Callable[[str], None]) -> None:
    start = time.monotonic()
    tmp = top / f".build-{sub.dir_name()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    root = tmp / "rootfs"
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(sub.packages)}", "--components=main",
           sub.suite, str(root), MIRROR]
    log(f"building the local stand-in for {sub.image}: {' '.join(cmd)}")
    if shutil.which("debootstrap") is None:
        raise DockerfileError("debootstrap is missing (apt-get install debootstrap; scripts/setup.sh does)")
    # In a mount namespace of its own: the /proc and /sys it mounts in the root vanish with it, also if killed.
    # SOURCE_DATE_EPOCH reaches the packages' maintainer scripts (shadow's password ages, py3compile's byte code).
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(DEFAULT_EPOCH))
    with (tmp / "debootstrap.log").open("w") as out:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", *cmd], stdout=out,
                           stderr=subprocess.STDOUT, check=False, env=env)
    if r.returncode != 0:
        tail = (tmp / "debootstrap.log").read_text(errors="replace").splitlines()[-15:]
        raise DockerfileError(f"debootstrap for {sub.image} failed ({r.returncode}):\n" + "\n".join(tail))
    _slim(root, sub.suite)
    _reproducible(root, DEFAULT_EPOCH)
    created_by = (f"debootstrap --variant=minbase --include={','.join(sub.packages)} {sub.suite} "
                  f"(ironlb.lab.debian_base: local stand-in for {sub.image})")
    layer = write_rootfs_layer(root, tmp / "layer.tar", created_by, DEFAULT_EPOCH)
    (tmp / "image.json").write_text(json.dumps({"diff_id": layer.diff_id, "created_by": created_by}))
    tmp.rename(final)
    log(f"{sub.image} stand-in built in {time.monotonic() - start:.0f} s ({_du(final / 'layer.tar')} MiB)")


def _du(path: Path) -> int:
    return path.stat().st_size >> 20


def _slim(root: Path, suite: str) -> None:
    """Debian's slim image conventions: apt sources with updates and security, no docs/caches/lists/logs."""
    (root / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/ironlb-slim").write_text(DPKG_EXCLUDES)
    (root / "etc/apt/apt.conf.d/ironlb-clean").write_text(APT_CLEAN)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {MIRROR}\nSuites: {suite} {suite}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {SECURITY_MIRROR}\nSuites: {suite}-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    for pattern in ("usr/share/doc/*/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*",
                    "usr/share/lintian/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/lib/apt/lists/*", "var/log/*.log", "var/log/apt/*", "var/cache/debconf/*-old",
                    "var/lib/dpkg/*-old"):
        for path in root.glob(pattern):
            if pattern.startswith("usr/share/doc") and path.name == "copyright":
                continue
            if path.is_dir() and not path.is_symlink():
                if path.name in ("partial", "auxfiles"):
                    continue
                shutil.rmtree(path)
            else:
                path.unlink()
    # The build's DNS settings and name stay out; a container runtime mounts its own.
    (root / "etc/resolv.conf").write_text("")
    (root / "etc/hostname").write_text("localhost\n")
    if not (root / "etc/hosts").exists():
        (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")


# What a debootstrap leaves that differs from one run to the next: logs with times, ldconfig's cache of file
# times, a machine identity, the previous versions that dpkg and debconf keep.
VARIABLE_FILES = ("var/log/*.log", "var/log/apt/*", "var/log/installer", "var/cache/ldconfig/aux-cache",
                  "etc/machine-id", "var/lib/dbus/machine-id", "var/lib/dpkg/*-old", "var/cache/debconf/*-old")

# Rewrites every byte-code file in place, hash-checked (SOURCE_DATE_EPOCH is set): valid whatever the sources'
# mtimes, so the layer can clamp them; run by the root's own Python.
_RECOMPILE = r"""
import importlib.util, os, py_compile, sys
n = 0
for top in sys.argv[1:]:
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        if os.path.basename(dirpath) != "__pycache__":
            continue
        for name in sorted(filenames):
            pyc = os.path.join(dirpath, name)
            try:
                src = importlib.util.source_from_cache(pyc)
            except ValueError:
                continue
            if not os.path.isfile(src):
                continue
            opt = name.split(".opt-")[1].split(".")[0] if ".opt-" in name else ""
            py_compile.compile(src, cfile=pyc, doraise=True, optimize=int(opt) if opt else 0,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            n += 1
print(f"recompiled {n} byte-code files", file=sys.stderr)
"""


def _reproducible(root: Path, epoch: int) -> None:
    """Removes or normalises what would differ between two builds of the same packages (see VARIABLE_FILES)."""
    for pattern in VARIABLE_FILES:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    # /etc/shadow's third field is the day of the last password change: the build's day, unless the epoch's.
    day = str(epoch // 86400)
    for name in ("etc/shadow", "etc/shadow-"):
        path = root / name
        if path.is_file() and not path.is_symlink():
            out = []
            for line in path.read_text().splitlines():
                fields = line.split(":")
                if len(fields) > 2 and fields[2]:
                    fields[2] = day
                out.append(":".join(fields) + "\n")
            path.write_text("".join(out))
    tops = [d for d in ("/usr/lib/python3", "/usr/lib/python3.11") if (root / d.lstrip("/")).is_dir()]
    if tops:
        rc = run_in_root(root, ["python3", "-I", "-c", _RECOMPILE, *tops],
                         {"PATH": DEFAULT_PATH, "SOURCE_DATE_EPOCH": str(epoch)}, 0, 0, "/", timeout=600)
        if rc != 0:
            raise DockerfileError(f"recompiling the byte code of the base image failed ({rc})")
