"""Reproducible image layers (ironlb.lab.imagebuild, ironlb.lab.debian_base): the same tree built twice gives the
same layer digests, image ID and archive bytes, although the build context's mtimes, the build's clock and the
byte code's timestamps differ between the two builds.

Two builds of small Dockerfiles rather than of the project's image: a full build twice (debootstrap of the base,
pip from PyPI, apt from the mirror) takes minutes and the network; ``scripts/build-images.py --check-reproducible``
does that by hand (bench/RESULTS.md). The second test builds the Dockerfile's Python steps (a venv, pip installing
the project from this tree, compileall) twice on the Debian base that ``make k8s-cluster`` leaves in the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from ironlb.lab import debian_base
from ironlb.lab.dockerfile import DockerfileError, Instruction
from ironlb.lab.imagebuild import (
    DEFAULT_EPOCH,
    BaseImage,
    Builder,
    Image,
    layer_differences,
    write_docker_archive,
    write_rootfs_layer,
)
from tests.lab.test_imagebuild import _tiny_rootfs

REPO = Path(__file__).resolve().parents[2]
EPOCH = {"SOURCE_DATE_EPOCH": str(DEFAULT_EPOCH)}
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="RUN needs root (chroot, mount and PID namespaces)")


def build(tmp: Path, name: str, ctx: Path, text: str, base: BaseImage, build_args: dict[str, str]) -> Path:
    """Builds ``text`` and writes its docker-archive; the archive's path."""
    image = Builder(ctx, tmp / name, lambda _n, _i: base, build_args=build_args).build(text)
    out = tmp / f"{name}.tar"
    write_docker_archive(image, "repro:1", out)
    return out


def manifest(archive: Path) -> tuple[str, list[str]]:
    """(image ID, layer digests) of a docker-archive."""
    with tarfile.open(archive) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = tar.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        return hashlib.sha256(config).hexdigest(), json.loads(config)["rootfs"]["diff_ids"]


def explain(a: Path, b: Path, tmp: Path) -> str:
    """The members that differ between the two archives' layers (the assertion message)."""
    out = []
    for archive, where in ((a, tmp / "xa"), (b, tmp / "xb")):
        with tarfile.open(archive) as tar:
            tar.extractall(where, filter="data")
    with (tmp / "xa" / "manifest.json").open() as fa, (tmp / "xb" / "manifest.json").open() as fb:
        la, lb = json.load(fa)[0]["Layers"], json.load(fb)[0]["Layers"]
    for x, y in zip(la, lb, strict=False):
        if x != y:
            out += layer_differences(tmp / "xa" / x, tmp / "xb" / y)[:20]
    return "\n".join(out)


def _context(tmp: Path) -> Path:
    ctx = tmp / "ctx"
    (ctx / "app" / "pkg").mkdir(parents=True)
    (ctx / "app" / "pkg" / "mod.py").write_text("X = 1\n")
    (ctx / "app" / "run.sh").write_text("#!/bin/sh\n")
    return ctx


def _touch_tree(path: Path, when: float) -> None:
    for p in [path, *path.rglob("*")]:
        os.utime(p, (when, when), follow_symlinks=False)


@root_only
def test_the_same_tree_built_twice_gives_the_same_layers_and_image_id(tmp_path: Path) -> None:
    root = tmp_path / "base"
    _tiny_rootfs(root)
    layer = write_rootfs_layer(root, tmp_path / "base.tar", "tiny", DEFAULT_EPOCH)
    base = BaseImage({}, lambda: Image(root, [layer], {}, []))
    ctx = _context(tmp_path)
    # A COPY (the context's mtimes differ between the builds), a RUN that writes files now, one that deletes.
    text = """\
FROM tiny
ARG SOURCE_DATE_EPOCH
COPY app /app
RUN echo "$SOURCE_DATE_EPOCH" > /epoch && echo x > /made && rm /victim
USER nobody
WORKDIR /tmp
RUN echo made > mine
"""
    archives = []
    for n, when in enumerate((time.time() - 86400, time.time())):
        _touch_tree(ctx, when)
        archives.append(build(tmp_path, f"b{n}", ctx, text, base, EPOCH))
        time.sleep(1.1)  # the second build's files get other mtimes
    (id_a, layers_a), (id_b, layers_b) = manifest(archives[0]), manifest(archives[1])
    assert layers_a == layers_b, explain(archives[0], archives[1], tmp_path)
    assert id_a == id_b
    assert archives[0].read_bytes() == archives[1].read_bytes()
    # The RUN saw the epoch, and no mtime in any layer is after it.
    built = tmp_path / "b0" / "stage0" / "rootfs"
    assert (built / "epoch").read_text() == f"{DEFAULT_EPOCH}\n"
    for path in sorted((tmp_path / "b0" / "layers").glob("*.tar")):
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                assert m.mtime <= DEFAULT_EPOCH and not m.uname and not m.gname and "mtime" not in m.pax_headers, m

    # Without the epoch the real mtimes stay (the COPY layer follows the context's), as with docker.
    _touch_tree(ctx, time.time() - 3600)
    plain = build(tmp_path, "plain", ctx, text, base, {})
    assert manifest(plain)[1][1] != layers_a[1]
    with pytest.raises(DockerfileError, match="SOURCE_DATE_EPOCH='yesterday': not a number of seconds"):
        Builder(ctx, tmp_path / "bad", lambda _n, _i: base, build_args={"SOURCE_DATE_EPOCH": "yesterday"})


def _cached_debian_base() -> Path:
    sub = debian_base.SUBSTITUTES["python:3.11-slim-bookworm"]
    final = debian_base.cache_dir() / "base" / sub.dir_name()
    if not (final / "image.json").is_file():
        pytest.skip(f"the Debian base is not built ({final}): `make k8s-cluster` builds it (debootstrap)")
    return final


@root_only
def test_python_steps_on_the_debian_base_are_reproducible(tmp_path: Path) -> None:
    """The Dockerfile's build stage, offline and cut to what writes byte code: a venv, this tree's package in it,
    compileall (pip compiles what it installs the same way: compileall with SOURCE_DATE_EPOCH). Byte code written
    at two different times must come out the same (hash-checked, not timestamped), and the Debian base's own byte
    code must be valid whatever the layer's clamped mtimes. Layer digests and the configuration are compared, not
    archives: writing the 120 MiB base layer twice more would only slow the suite down."""
    _cached_debian_base()
    base = debian_base.resolver()("python:3.11-slim-bookworm", _ins())
    ctx = tmp_path / "ctx"
    shutil.copytree(REPO / "src" / "ironlb", ctx / "ironlb", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    text = """\
FROM python:3.11-slim-bookworm
ARG SOURCE_DATE_EPOCH
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY ironlb /src/ironlb
RUN python -m venv --without-pip /opt/ironlb \\
 && cp -r /src/ironlb /opt/ironlb/lib/python3.11/site-packages/ \\
 && /opt/ironlb/bin/python -m compileall -q /opt/ironlb/lib
"""
    images = []
    for n, when in enumerate((time.time() - 86400, time.time())):
        _touch_tree(ctx, when)
        images.append(Builder(ctx, tmp_path / f"b{n}", lambda _n, _i: base, build_args=EPOCH).build(text))
    a, b = images
    assert len(a.layers) == 3
    diffs = [line for x, y in zip(a.layers, b.layers, strict=True) if x.diff_id != y.diff_id
             for line in layer_differences(x.path, y.path)[:20]]
    assert [x.diff_id for x in a.layers] == [y.diff_id for y in b.layers], "\n".join(diffs)
    assert (a.config, a.history) == (b.config, b.history)
    # The base's and pip's byte code is hash-checked: flags 0b11 in the pyc header (PEP 552).
    rootfs = tmp_path / "b0" / "stage0" / "rootfs"
    pycs = [*(rootfs / "usr/lib/python3.11/__pycache__").glob("os.*.pyc"),
            *(rootfs / "opt/ironlb/lib/python3.11/site-packages/ironlb/__pycache__").glob("*.pyc")]
    assert len(pycs) > 2
    for pyc in pycs:
        assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b11, pyc


def _ins() -> Instruction:
    return Instruction(1, "FROM", {}, "python:3.11-slim-bookworm")
