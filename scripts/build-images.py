#!/usr/bin/env python3
"""Build the container images of the Kubernetes lab without a registry or a container engine.

Each image is written as a docker-archive tar (manifest.json, the image config, one tar per layer), which
``ctr -n k8s.io images import`` loads into a node's containerd. Output, reused while its inputs are unchanged:

    ${IRONLB_IMAGES:-${IRONLB_CACHE:-~/.cache/ironlb}/images}/{ironlb,pause,http-echo}.tar

- ``ironlb:0.1.0`` (the name config/manifests/ironlb.yaml uses): built from the project's Dockerfile, every
  instruction run in order by ``ironlb.lab.imagebuild`` (FROM per stage, ARG, ENV, WORKDIR, COPY with the
  .dockerignore and ``--from``, RUN in a chroot of the stage with this machine's network, USER, ENTRYPOINT, CMD);
  an instruction it does not support fails the build with its line. Its base, ``python:3.11-slim-bookworm``, is a
  registry image this machine does not reach: ``ironlb.lab.debian_base`` builds a stand-in with debootstrap (Debian
  12 minbase + Debian's Python 3.11 and venv, ``python`` on PATH), cached under ``base/`` beside the images.
  It runs as nobody (65534); the speaker's DaemonSet runs it as root with only NET_RAW, NET_BIND_SERVICE and
  SYS_NICE. Built with the build argument SOURCE_DATE_EPOCH (fixed: MTIME below), so that the same tree and the
  same Debian packages give the same layer digests and image ID (tests/lab/test_reproducible.py).
- ``ironlb.local/pause:1``: the pod sandbox (containerd's ``sandbox_image``), and ``ironlb.local/http-echo:1``: the
  backend pods, answering with their pod name on :8080. Both are static Go programs from scripts/images.

    scripts/build-images.py            # prints the output directory (last line)
    scripts/build-images.py --force    # rebuild even when up to date (the cached base root stays)
    scripts/build-images.py --refresh-base    # also rebuild the base root (newer Debian packages)
    scripts/build-images.py --check-reproducible   # build everything twice from nothing, compare (no cache used)
    scripts/build-images.py --record-debian        # rebuild, and record its Debian versions (see below)

The Debian mirror cannot be pinned (ironlb.lab.debian_versions says why): each build of ``ironlb:0.1.0`` compares
the versions dpkg installed in it with requirements/debian-image.txt and logs the packages that moved;
``--record-debian`` writes that file (the only thing written into the work tree). Needs root and debootstrap.
Times: README ("The Kubernetes cluster lab").
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this work tree's builder, also when run by another interpreter

from ironlb.lab import debian_base, debian_versions  # noqa: E402
from ironlb.lab.dockerfile import IgnoreRules  # noqa: E402
from ironlb.lab.imagebuild import (  # noqa: E402
    DEFAULT_EPOCH,
    Builder,
    context_files,
    layer_differences,
    write_docker_archive,
)

IMAGES_SRC = REPO / "scripts" / "images"
IRONLB_IMAGE = "ironlb:0.1.0"
PAUSE_IMAGE = "ironlb.local/pause:1"
ECHO_IMAGE = "ironlb.local/http-echo:1"
MTIME = DEFAULT_EPOCH  # fixed: the same inputs give the same layer digests
DEBIAN_RECORD = REPO / "requirements" / "debian-image.txt"


def log(msg: str) -> None:
    print(f"build-images: {msg}", file=sys.stderr, flush=True)


# ---- layers ------------------------------------------------------------------------------------------------------
class Layer:
    """An uncompressed layer tar built in memory, entries added in order with root ownership and a fixed mtime."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed by finish()
        self.names: set[str] = set()

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name.lstrip("/"))
        info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, MTIME, 0, 0
        return info

    def dir(self, name: str, mode: int = 0o755) -> None:
        name = name.rstrip("/")
        if not name or name in self.names:
            return
        self.dir(os.path.dirname(name))
        self.names.add(name)
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def symlink(self, name: str, target: str) -> None:
        if name in self.names:
            return
        self.dir(os.path.dirname(name))
        self.names.add(name)
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def data(self, name: str, data: bytes, mode: int = 0o644) -> None:
        if name in self.names:
            return
        self.dir(os.path.dirname(name))
        self.names.add(name)
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def finish(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def go_binaries(work: Path) -> Path:
    out = work / "go-bin"
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-buildvcs=false", GOTOOLCHAIN="local",
               GOCACHE=str(cache_dir() / "go-build-images"))
    go = shutil.which("go") or "/usr/local/go/bin/go"
    subprocess.run([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", f"{out}/", "./cmd/..."], cwd=IMAGES_SRC,
                   env=env, check=True)
    return out


def single_binary_layer(binary: Path, dest: str) -> bytes:
    layer = Layer()
    layer.data(dest, binary.read_bytes(), 0o755)
    layer.dir("tmp", 0o1777)
    return layer.finish()


# ---- docker-archive ------------------------------------------------------------------------------------------------
def write_archive(path: Path, ref: str, layers: list[bytes], config: dict[str, object]) -> None:
    """manifest.json + config + layer tars, the format of `docker save` that `ctr images import` reads."""
    diff_ids = [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(MTIME)),
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "scripts/build-images.py"} for _ in layers],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    layer_names = [f"{d.removeprefix('sha256:')}/layer.tar" for d in diff_ids]
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": layer_names}]
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(config_name, config_bytes), *zip(layer_names, layers, strict=True),
                           ("manifest.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)
    log(f"{ref} -> {path} ({path.stat().st_size >> 20} MiB)")


DOCKERFILE = REPO / "Dockerfile"


def dockerfile_config(path: Path = DOCKERFILE) -> dict[str, Any]:
    """The configuration the Dockerfile gives the image (its last stage over the base's), evaluated without
    building: the same code that builds the image computes it."""
    builder = Builder(REPO, Path("/nonexistent"), debian_base.resolver(), config_only=True)
    return builder.build(path.read_text(), source=str(path)).config


def cache_dir() -> Path:
    return Path(os.environ.get("IRONLB_CACHE", Path.home() / ".cache" / "ironlb"))


def report_debian(root: Path, record: bool) -> None:
    """Logs the Debian packages of the image root that differ from requirements/debian-image.txt (or records them)."""
    now = debian_versions.installed((root / "var/lib/dpkg/status").read_text())
    rel = DEBIAN_RECORD.relative_to(REPO)
    if record:
        DEBIAN_RECORD.write_text(debian_versions.format_record(now, (
            f"The Debian packages of {IRONLB_IMAGE} (the Dockerfile on ironlb.lab.debian_base's debootstrap root)\n"
            "as built from deb.debian.org: written by scripts/build-images.py --record-debian; each image build\n"
            "logs the packages that moved since (the mirror cannot be pinned: ironlb.lab.debian_versions).")))
        log(f"{IRONLB_IMAGE}: recorded its {len(now)} Debian packages in {rel}")
        return
    recorded = debian_versions.read_record(DEBIAN_RECORD.read_text()) if DEBIAN_RECORD.is_file() else {}
    moved = debian_versions.drift(recorded, now)
    if moved:
        log(f"{IRONLB_IMAGE}: {len(moved)} of its {len(now)} Debian packages differ from {rel} (the Debian mirror "
            f"moved; --record-debian records them): {'; '.join(moved)}")
    else:
        log(f"{IRONLB_IMAGE}: its {len(now)} Debian packages are the versions of {rel}")


def inputs_key(*paths: Path) -> str:
    """A digest of every file under ``paths`` (names and contents), of this script, of the build context that
    .dockerignore lets through and of the base images' recipes."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    ignore = REPO / ".dockerignore"
    rules = IgnoreRules.parse(ignore.read_text()) if ignore.is_file() else IgnoreRules(())
    for rel in context_files(REPO, rules):
        h.update(rel.encode() + b"\0" + (REPO / rel).read_bytes())
    h.update(json.dumps(sorted(s.key() for s in debian_base.SUBSTITUTES.values())).encode())
    for base in paths:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()
                                                     and "__pycache__" not in p.parts)
        for p in files:
            h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def archive_digests(archive: Path, into: Path) -> tuple[str, list[Path]]:
    """(image ID, layer paths) of a docker-archive, extracted into ``into``."""
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    [entry] = json.loads((into / "manifest.json").read_text())
    return hashlib.sha256((into / entry["Config"]).read_bytes()).hexdigest(), [into / p for p in entry["Layers"]]


def check_reproducible(out: Path) -> int:
    """Builds every image twice, each time from nothing (its own empty cache: debootstrap, Go, pip, apt), and
    compares image IDs, layer digests and archive bytes; prints what differs. 0 when all are the same."""
    start = time.monotonic()
    names = ("pause.tar", "http-echo.tar", "ironlb.tar")
    with tempfile.TemporaryDirectory(prefix="reproducible.", dir=out) as tmp:
        builds = [Path(tmp) / n for n in ("a", "b")]
        for cache in builds:
            log(f"reproducibility check: building everything into {cache}")
            env = dict(os.environ, IRONLB_CACHE=str(cache), IRONLB_IMAGES=str(cache / "images"))
            subprocess.run([sys.executable, __file__], env=env, check=True, stdout=subprocess.DEVNULL)
        failed = 0
        for name in names:
            a, b = (c / "images" / name for c in builds)
            if a.read_bytes() == b.read_bytes():
                log(f"{name}: identical ({a.stat().st_size >> 20} MiB)")
                continue
            failed += 1
            id_a, layers_a = archive_digests(a, a.with_suffix(".x"))
            id_b, layers_b = archive_digests(b, b.with_suffix(".x"))
            log(f"{name}: image ID {id_a[:12]} vs {id_b[:12]}")
            for la, lb in zip(layers_a, layers_b, strict=False):
                if la.parent.name != lb.parent.name:
                    log(f"  layer {la.parent.name[:12]} vs {lb.parent.name[:12]}:")
                    for line in layer_differences(la, lb)[:40]:
                        log(f"    {line}")
    log(f"reproducibility check: {len(names) - failed} of {len(names)} images identical "
        f"({time.monotonic() - start:.0f} s)")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--refresh-base", action="store_true", help="also rebuild the cached base root")
    parser.add_argument("--out-dir", action="store_true", help="only print the output directory")
    parser.add_argument("--record-debian", action="store_true",
                        help=f"rebuild and record the image's Debian package versions in {DEBIAN_RECORD.name}")
    parser.add_argument("--check-reproducible", action="store_true",
                        help="build everything twice from nothing and compare (the cache is not touched)")
    args = parser.parse_args()
    out = Path(os.environ["IRONLB_IMAGES"]) if os.environ.get("IRONLB_IMAGES") else cache_dir() / "images"
    if args.out_dir:
        print(out)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    if args.check_reproducible:
        return check_reproducible(out)
    start = time.monotonic()
    key = inputs_key(IMAGES_SRC, DOCKERFILE, REPO / "src" / "ironlb" / "lab")
    stamp = out / "inputs.sha256"
    targets = [out / n for n in ("ironlb.tar", "pause.tar", "http-echo.tar")]
    fresh = stamp.exists() and stamp.read_text().strip() == key and all(t.exists() for t in targets)
    if fresh and not args.force and not args.refresh_base and not args.record_debian:
        log(f"reusing {out}")
        print(out)
        return 0
    stamp.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="images.", dir=out) as tmp:
        work = Path(tmp)
        bins = go_binaries(work)
        write_archive(out / "pause.tar", PAUSE_IMAGE, [single_binary_layer(bins / "pause", "pause")],
                      {"Entrypoint": ["/pause"], "User": "65534:65534"})
        write_archive(out / "http-echo.tar", ECHO_IMAGE, [single_binary_layer(bins / "http-echo", "http-echo")],
                      {"Entrypoint": ["/http-echo"], "User": "65534:65534", "ExposedPorts": {"8080/tcp": {}}})
        built = time.monotonic()
        builder = Builder(REPO, work / "ironlb", debian_base.resolver(log=log, refresh=args.refresh_base), log=log,
                          build_args={"SOURCE_DATE_EPOCH": str(MTIME)})
        image = builder.build(DOCKERFILE.read_text(), source=str(DOCKERFILE))
        size = write_docker_archive(image, IRONLB_IMAGE, out / "ironlb.tar")
        assert image.rootfs is not None
        report_debian(image.rootfs, args.record_debian)
        log(f"{IRONLB_IMAGE} -> {out / 'ironlb.tar'} ({size >> 20} MiB, {len(image.layers)} layers) from the "
            f"Dockerfile in {time.monotonic() - built:.0f} s")
    stamp.write_text(key + "\n")
    log(f"built in {time.monotonic() - start:.0f} s")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
