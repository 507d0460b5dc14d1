#!/usr/bin/env python3
"""Build the container images of the Kubernetes lab without a registry or a container engine.

Each image is written as a docker-archive tar (manifest.json, the image config, one tar per layer), which
``ctr -n k8s.io images import`` loads into a node's containerd. Output, reused while its inputs are unchanged:

    ${IRONLB_CACHE:-~/.cache/ironlb}/images/{ironlb,pause,http-echo}.tar

- ``ironlb:0.1.0`` (the name config/manifests/ironlb.yaml uses): the Dockerfile's layout without its base image.
  Layer 1 is this machine's Debian python3.11 (``/usr/bin/python3.11`` and ``/usr/lib/python3.11``), ``openssl``
  (the controller makes the webhook certificate with it) and ``ip`` (the speaker), with the shared libraries they
  and the stdlib's extension modules load (found with ``ldd``). Layer 2 is the venv ``/opt/ironlb`` with the
  ironlb package of this work tree and its dependencies (pip, from PyPI or pip's cache), byte-compiled. The image
  configuration (ENV, USER, WORKDIR, ENTRYPOINT, CMD) is read from the Dockerfile's last stage. The Dockerfile
  itself cannot be built here: its base image comes from a registry this machine does not reach.
  It runs as nobody (65534); the speaker's DaemonSet runs it as root with only NET_RAW.
- ``ironlb.local/pause:1``: the pod sandbox (containerd's ``sandbox_image``), and ``ironlb.local/http-echo:1``: the
  backend pods, answering with their pod name on :8080. Both are static Go programs from scripts/images.

    scripts/build-images.py            # prints the output directory (last line)
    scripts/build-images.py --force    # rebuild even when up to date

Nothing is written into the work tree. Cold: 30 s to 2 min (most of it pip and compileall); warm: instant.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IMAGES_SRC = REPO / "scripts" / "images"
IRONLB_IMAGE = "ironlb:0.1.0"
PAUSE_IMAGE = "ironlb.local/pause:1"
ECHO_IMAGE = "ironlb.local/http-echo:1"
PYTHON = "/usr/bin/python3.11"
PY_LIB = "/usr/lib/python3.11"
# Parts of the stdlib the components never import (and the 40 MB static libpython).
PY_EXCLUDE = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "distutils",
              "config-3.11-x86_64-linux-gnu", "site-packages", "dist-packages"}
EXTRA_BINARIES = ["/usr/bin/openssl", "/usr/sbin/ip"]
# openssl reads its configuration at /usr/lib/ssl/openssl.cnf (a symlink to /etc/ssl/openssl.cnf).
EXTRA_FILES = ["/usr/lib/ssl/openssl.cnf"]
MTIME = 1_700_000_000  # fixed: the same inputs give the same layer digests


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

    def host_file(self, path: str, name: str | None = None) -> None:
        """A file of this machine (a symlink stays a symlink, and its target comes too)."""
        name = name or canonical(path)
        if os.path.islink(path):
            target = os.readlink(path)
            self.symlink(name, target)
            self.host_file(os.path.join(os.path.dirname(path), target))
            return
        st = os.stat(path)
        with open(path, "rb") as f:
            self.data(name, f.read(), st.st_mode & 0o7777)

    def tree(self, src: Path, dest: str, exclude: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        for root, dirs, files in os.walk(src):
            rel = os.path.relpath(root, src)
            dirs[:] = sorted(d for d in dirs if not (rel == "." and d in exclude))
            base = dest if rel == "." else f"{dest}/{rel}"
            self.dir(base)
            for f in sorted(files):
                p = os.path.join(root, f)
                if os.path.islink(p):
                    self.symlink(f"{base}/{f}", os.readlink(p))
                else:
                    with open(p, "rb") as fh:
                        self.data(f"{base}/{f}", fh.read(), os.stat(p).st_mode & 0o7777)

    def finish(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def canonical(path: str) -> str:
    """The path with its directory's symlinks resolved (/lib/x -> /usr/lib/x on a merged-/usr Debian)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def shared_libraries(paths: list[str]) -> set[str]:
    """Every shared library (and the loader) the ELF files ``paths`` need, from ``ldd``."""
    libs: set[str] = set()
    for chunk in range(0, len(paths), 200):
        out = subprocess.run(["ldd", *paths[chunk:chunk + 200]], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s+(/\S+)\s+\(", line)
            if m:
                libs.add(m.group(1))
    return libs


def base_rootfs_layer() -> bytes:
    """Debian's python3.11, openssl and ip with their libraries, a passwd/group with nobody, /tmp."""
    layer = Layer()
    for link, target in [("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin")]:
        layer.symlink(link, target)
    layer.dir("tmp", 0o1777)
    layer.data("etc/passwd", b"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:"
               b"/usr/sbin/nologin\n")
    layer.data("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    layer.host_file(PYTHON)
    layer.symlink("usr/bin/python3", "python3.11")
    layer.tree(Path(PY_LIB), PY_LIB.lstrip("/"), PY_EXCLUDE)
    for path in [*EXTRA_BINARIES, *EXTRA_FILES]:
        layer.host_file(path)
    elves = [PYTHON, *EXTRA_BINARIES, *(str(p) for p in Path(PY_LIB, "lib-dynload").glob("*.so"))]
    for lib in sorted(shared_libraries(elves)):
        layer.host_file(lib)
    layer.symlink("usr/lib64/ld-linux-x86-64.so.2", "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    return layer.finish()


def ironlb_layer(work: Path) -> bytes:
    """The venv /opt/ironlb: this work tree's ironlb and its dependencies, byte-compiled, and bin/ironlb."""
    stage = work / "stage"
    site = stage / "opt/ironlb/lib/python3.11/site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-compile", "--no-warn-script-location", "--target", str(site), str(REPO)], check=True,
                   stdout=sys.stderr)
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts with this machine's interpreter path
    # Compiled by the image's own interpreter, with the paths it will have there.
    subprocess.run([PYTHON, "-m", "compileall", "-q", "-j", "0", "-s", str(stage), "-p", "/", str(site)],
                   check=True, stdout=sys.stderr)
    layer = Layer()
    layer.symlink("opt/ironlb/bin/python", PYTHON)
    layer.symlink("opt/ironlb/bin/python3", "python")
    layer.data("opt/ironlb/pyvenv.cfg", b"home = /usr/bin\ninclude-system-site-packages = false\n"
               b"version = 3.11\n")
    layer.data("opt/ironlb/bin/ironlb", b"#!/opt/ironlb/bin/python\nimport sys\nfrom ironlb.cli import main\n"
               b"sys.exit(main())\n", 0o755)
    layer.symlink("opt/ironlb/lib64", "lib")
    layer.tree(stage / "opt/ironlb/lib", "opt/ironlb/lib")
    # The system libraries the dependencies' extension modules load (e.g. libgcc_s for pydantic-core).
    for lib in sorted(shared_libraries([str(p) for p in site.rglob("*.so")])):
        if not lib.startswith(str(stage)):
            layer.host_file(lib)
    return layer.finish()


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
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the python base image's PATH


def dockerfile_config(path: Path = DOCKERFILE) -> dict[str, Any]:
    """The image configuration that the Dockerfile's last stage sets (ENV, USER, WORKDIR, ENTRYPOINT, CMD), read
    from the Dockerfile itself so that the image built here and a ``docker build`` run the same way."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    last = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    env: dict[str, str] = {"PATH": BASE_PATH}
    config: dict[str, Any] = {"WorkingDir": "/"}
    for line in lines[last + 1:]:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "ENV":
            for item in shlex.split(rest):
                key, sep, value = item.partition("=")
                if not sep:
                    raise ValueError(f"{path}: ENV {rest!r}: only the KEY=VALUE form is supported")
                env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)
        elif op == "USER":
            config["User"] = rest.strip()
        elif op == "WORKDIR":
            config["WorkingDir"] = rest.strip()
        elif op in ("ENTRYPOINT", "CMD"):
            value = json.loads(rest)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{path}: {op} must be the JSON (exec) form, got {rest!r}")
            config["Entrypoint" if op == "ENTRYPOINT" else "Cmd"] = value
    config["Env"] = [f"{k}={v}" for k, v in env.items()]
    return config


def cache_dir() -> Path:
    return Path(os.environ.get("IRONLB_CACHE", Path.home() / ".cache" / "ironlb"))


def inputs_key(*paths: Path) -> str:
    """A digest of every file under ``paths`` (names and contents) and of this script."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    for base in paths:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()
                                                     and "__pycache__" not in p.parts)
        for p in files:
            h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--out-dir", action="store_true", help="only print the output directory")
    args = parser.parse_args()
    out = cache_dir() / "images"
    if args.out_dir:
        print(out)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    key = inputs_key(REPO / "src", REPO / "pyproject.toml", IMAGES_SRC, DOCKERFILE)
    stamp = out / "inputs.sha256"
    targets = [out / n for n in ("ironlb.tar", "pause.tar", "http-echo.tar")]
    if not args.force and stamp.exists() and stamp.read_text().strip() == key and all(t.exists() for t in targets):
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
        write_archive(out / "ironlb.tar", IRONLB_IMAGE, [base_rootfs_layer(), ironlb_layer(work)],
                      dockerfile_config())
    stamp.write_text(key + "\n")
    log(f"built in {time.monotonic() - start:.0f} s")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
