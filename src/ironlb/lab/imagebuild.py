"""Build an image from a Dockerfile without Docker: every instruction run in order on a root directory per stage.

The lab has no container engine and no registry, yet its ironlb image must be what ``docker build`` makes of the
project's Dockerfile. :class:`Builder` runs the instructions that ``ironlb.lab.dockerfile`` reads: FROM starts a
stage from a local base image (a substitute the caller provides: :data:`BaseResolver`) or an earlier stage, ARG,
ENV, WORKDIR, USER, CMD, ENTRYPOINT, LABEL and EXPOSE set the configuration, COPY copies from the build context
(filtered by .dockerignore) or ``--from`` an earlier stage, and RUN runs in a chroot of the stage's root in new
mount and PID namespaces: ``/proc`` and ``/dev`` mounted, and this machine's DNS settings and trusted CAs over
the image's (``RUN_BINDS``), for the command only; the network is the host's, as with docker's default. Each COPY,
RUN or WORKDIR that changes the root becomes one layer: the paths whose inode changed since the previous
instruction (lstat signatures), deletions as whiteouts. :func:`write_docker_archive` writes the ``docker save``
format that ``ctr images import`` loads.

Reproducible: layer members are in name order with numeric owners and no user names, and a ``SOURCE_DATE_EPOCH``
build argument does what BuildKit does with it: a stage that declares ``ARG SOURCE_DATE_EPOCH`` sees it in its RUN
environment (Python then writes hash-checked byte code, not the source's mtime), and every mtime in a layer is
clamped to it, so building the same tree twice gives the same layer digests and image ID
(:func:`layer_differences` says what differs when it does not).
Needs root (chroot, mounts) for RUN; the rest runs anywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ironlb.lab.dockerfile import (
    Dockerfile,
    DockerfileError,
    IgnoreRules,
    Instruction,
    arg_declarations,
    expand,
    join_path,
    key_values,
    parse,
    words,
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The lab's SOURCE_DATE_EPOCH (2023-11-14T22:13:20Z): fixed, so that layers do not change with the commit.
DEFAULT_EPOCH = 1_700_000_000
RUN_TIMEOUT = 1800.0  # s: one RUN (a pip install or apt-get from a slow mirror); more is a hang
MAX_SYMLINKS = 40
# This machine's files a RUN sees in place of the image's, for the command only (never in a layer): its DNS
# settings, as docker's RUN uses the host's, and its trusted CAs, so that a TLS-inspecting proxy between the build
# and PyPI is trusted as the host trusts it.
RUN_BINDS = ("/etc/resolv.conf", "/etc/hosts", "/etc/ssl/certs/ca-certificates.crt")
# Mount points: their contents are never part of a layer.
VIRTUAL = ("proc", "sys", "dev")


@dataclass(frozen=True)
class Layer:
    path: Path  # an uncompressed layer tar
    diff_id: str  # "sha256:<hex>" of that tar
    created_by: str


@dataclass
class Image:
    """A built (or base) image: its root as a directory, its layers and its configuration."""

    rootfs: Path | None  # None for a configuration-only evaluation
    layers: list[Layer]
    config: dict[str, Any]
    history: list[dict[str, Any]]


@dataclass(frozen=True)
class BaseImage:
    """A base image the caller supplies for a FROM: its configuration now, its root only when needed."""

    config: dict[str, Any]
    materialize: Callable[[], Image]


BaseResolver = Callable[[str, Instruction], BaseImage]


def scratch() -> BaseImage:
    """``FROM scratch``: no files, no configuration."""
    return BaseImage({}, lambda: Image(None, [], {}, []))


# ---- paths inside a root -----------------------------------------------------------------------------------------
def resolve_in_root(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """``path`` of the image as a path of this machine under ``root``: symlinks are followed inside ``root`` (an
    absolute target means the image's ``/``, ``..`` stops at it), so nothing outside ``root`` is ever reached."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink() and (parts or follow_last):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise OSError(f"{path}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


# ---- snapshots and layers ----------------------------------------------------------------------------------------
Signature = tuple[int, int, int, int, int, int, int]


def snapshot(root: Path) -> dict[str, Signature]:
    """Every path under ``root`` (relative, ``/``-separated) with what changes when it is written, replaced,
    chmod-ed or chown-ed: inode, mode, owner, size, mtime and ctime."""
    out: dict[str, Signature] = {}

    def walk(directory: Path, rel: str) -> None:
        with os.scandir(directory) as it:
            for entry in it:
                path = f"{rel}{entry.name}"
                st = entry.stat(follow_symlinks=False)
                out[path] = (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                if stat.S_ISDIR(st.st_mode) and not (rel == "" and entry.name in VIRTUAL):
                    walk(Path(entry.path), f"{path}/")

    walk(root, "")
    return out


def _normalizer(epoch: int | None) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
    def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
        # The owner is the numeric one of the image; this machine's user names mean nothing there. A whole-second
        # mtime (a float one costs a pax header per member), clamped to the epoch when there is one.
        info.uname = info.gname = ""
        info.mtime = int(info.mtime) if epoch is None else min(int(info.mtime), epoch)
        return info

    return normalize


def write_layer(root: Path, before: dict[str, Signature], after: dict[str, Signature], path: Path,
                created_by: str, epoch: int | None = None) -> Layer | None:
    """The layer tar of what changed between two snapshots of ``root`` (None when nothing did): new and changed
    paths with their parent directories, and a ``.wh.<name>`` whiteout for each removed path. ``epoch``
    (SOURCE_DATE_EPOCH) clamps the mtimes."""
    changed = {p for p, sig in after.items() if before.get(p) != sig}
    removed = {p for p in before if p not in after}
    top_removed = {p for p in removed if posixpath.dirname(p) not in removed}
    if not changed and not top_removed:
        return None
    entries = set(changed) | {posixpath.dirname(p) for p in top_removed if posixpath.dirname(p)}
    for p in list(entries):
        parent = posixpath.dirname(p)
        while parent:
            entries.add(parent)
            parent = posixpath.dirname(parent)
    whiteouts = {posixpath.join(posixpath.dirname(p), ".wh." + posixpath.basename(p)) for p in top_removed}
    normalize = _normalizer(epoch)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries | whiteouts):
            if name in whiteouts:
                tar.addfile(tarfile.TarInfo(name))
            elif name in after:
                tar.add(root / name, arcname=name, recursive=False, filter=normalize)
    return Layer(path, f"sha256:{file_sha256(path)}", created_by)


def write_rootfs_layer(root: Path, path: Path, created_by: str, epoch: int | None = None) -> Layer:
    """A whole root as one layer (a base image): everything but the contents of /proc, /sys and /dev."""
    return write_layer(root, {}, snapshot(root), path, created_by, epoch) or _empty_layer(path, created_by)


def _empty_layer(path: Path, created_by: str) -> Layer:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT):
        pass
    return Layer(path, f"sha256:{file_sha256(path)}", created_by)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# ---- RUN -------------------------------------------------------------------------------------------------------
# Runs as PID 1 of new mount and PID namespaces (unshare), with this machine's python in isolated mode: mounts what
# a command expects, enters the root and becomes the user. The mounts vanish with the namespace.
_CHILD = r"""
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
root = spec["root"]
def mount(*args):
    subprocess.run(["mount", *args], check=True)
if os.path.isdir(root + "/proc") and not os.path.islink(root + "/proc"):
    mount("-t", "proc", "proc", root + "/proc")
if os.path.isdir(root + "/dev") and not os.path.islink(root + "/dev"):
    mount("--rbind", "/dev", root + "/dev")
for name in spec["binds"]:
    target = root + name
    # Only over a regular file of the image reached without a symlink: never onto a path outside the root.
    if os.path.isfile(name) and os.path.isfile(target) and \
            os.path.realpath(target) == os.path.realpath(root) + name:
        mount("--bind", "-o", "ro", name, target)
os.chroot(root)
try:
    os.chdir(spec["cwd"])
    os.setgroups(spec["groups"])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
except OSError as exc:
    print(f"RUN {spec['argv'][0]}: {exc}", file=sys.stderr)
    sys.exit(127)
"""


def run_in_root(root: Path, argv: list[str], env: dict[str, str], uid: int, gid: int, cwd: str,
                timeout: float = RUN_TIMEOUT) -> int:
    """Run ``argv`` inside ``root`` as ``uid:gid`` in ``cwd`` with exactly ``env``; its exit status. A command
    still running at ``timeout`` is killed with everything it started (its PID namespace dies with its PID 1)."""
    spec = {"root": str(root), "argv": argv, "env": env, "uid": uid, "gid": gid, "groups": [gid], "cwd": cwd,
            "binds": list(RUN_BINDS)}
    cmd = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--",
           sys.executable, "-I", "-S", "-c", _CHILD, json.dumps(spec)]
    host_env = {"PATH": DEFAULT_PATH}
    return subprocess.run(cmd, env=host_env, timeout=timeout, check=False, stdin=subprocess.DEVNULL).returncode


Runner = Callable[[Path, list[str], dict[str, str], int, int, str], int]


# ---- users -----------------------------------------------------------------------------------------------------
def _table(root: Path, name: str) -> list[list[str]]:
    try:
        text = resolve_in_root(root, f"/etc/{name}").read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines()[:10000] if line and not line.startswith("#")]


def resolve_user(root: Path, user: str, ins: Instruction) -> tuple[int, int]:
    """``USER`` as numbers: ``name|uid[:group|gid]`` looked up in the image's /etc/passwd and /etc/group."""
    name, _, group = user.partition(":")
    passwd = _table(root, "passwd")
    if name.isdigit():
        uid = int(name)
        primary = next((int(f[3]) for f in passwd if len(f) > 3 and f[2] == name and f[3].isdigit()), 0)
    else:
        row = next((f for f in passwd if len(f) > 3 and f[0] == name), None)
        if row is None or not row[2].isdigit() or not row[3].isdigit():
            raise ins.error(f"user {name!r} is not in the image's /etc/passwd")
        uid, primary = int(row[2]), int(row[3])
    if not group:
        return uid, primary
    if group.isdigit():
        return uid, int(group)
    grow = next((f for f in _table(root, "group") if len(f) > 2 and f[0] == group), None)
    if grow is None or not grow[2].isdigit():
        raise ins.error(f"group {group!r} is not in the image's /etc/group")
    return uid, int(grow[2])


# ---- the build ---------------------------------------------------------------------------------------------------
@dataclass
class _State:
    """A stage being built."""

    image: Image
    env: dict[str, str]
    args: dict[str, str] = field(default_factory=dict)
    snap: dict[str, Signature] = field(default_factory=dict)
    cmd_set: bool = False  # a CMD of this stage (an ENTRYPOINT drops only an inherited one)

    @property
    def scope(self) -> dict[str, str]:
        """What ``$VAR`` means in this stage: its ARGs, overridden by its ENV (as docker)."""
        return {**self.args, **self.env}


def _env_list(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


def _env_dict(config: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


class Builder:
    """Runs a Dockerfile's instructions. ``config_only`` evaluates the configuration without touching a file (no
    base root, COPY or RUN): what the image will say, read from the Dockerfile alone."""

    def __init__(self, context: Path, work: Path, resolve_base: BaseResolver, *,
                 build_args: dict[str, str] | None = None, runner: Runner | None = None,
                 config_only: bool = False, log: Callable[[str], None] = lambda _msg: None) -> None:
        self.context = context
        self.work = work
        self.resolve_base = resolve_base
        self.build_args = build_args or {}
        self.runner: Runner = runner or run_in_root
        self.config_only = config_only
        self.log = log
        self._layer_seq = 0
        self.epoch = source_date_epoch(self.build_args)
        ignore = context / ".dockerignore"
        self.ignore = IgnoreRules.parse(ignore.read_text()) if ignore.is_file() else IgnoreRules(())

    def build(self, text: str, source: str = "Dockerfile", target: str | None = None) -> Image:
        """The image of the last stage (or of the stage named ``target``)."""
        df = parse(text, self.build_args, source)
        last = len(df.stages) - 1
        if target is not None:
            last = next((s.index for s in df.stages if s.name == target.lower()), -1)
            if last < 0:
                raise DockerfileError(f"{source}: no stage named {target!r}")
        built: dict[int, Image] = {}
        for st in df.stages[:last + 1]:
            built[st.index] = self._stage(df, st.index, built)
        return built[last]

    # A stage --------------------------------------------------------------------------------------------------
    def _stage(self, df: Dockerfile, index: int, built: dict[int, Image]) -> Image:
        st = df.stages[index]
        self.log(f"stage {index}{f' ({st.name})' if st.name else ''}: FROM {st.base}")
        state = self._from(df, index, built)
        for ins in st.instructions:
            self._instruction(df, index, built, state, ins)
        return state.image

    def _from(self, df: Dockerfile, index: int, built: dict[int, Image]) -> _State:
        st = df.stages[index]
        src: Image | None
        if df.is_stage(st.base, index):
            parent = built[df.stage(st.base, index, st.frm).index]
            config, layers, history, src = dict(parent.config), list(parent.layers), list(parent.history), parent
        else:
            base = scratch() if st.base == "scratch" else self.resolve_base(st.base, st.frm)
            src = None if self.config_only else base.materialize()
            config = dict(base.config)
            layers = list(src.layers) if src else []
            history = list(src.history) if src else []
        rootfs = None
        if not self.config_only:
            rootfs = self.work / f"stage{index}" / "rootfs"
            if rootfs.exists():
                shutil.rmtree(rootfs)
            rootfs.parent.mkdir(parents=True, exist_ok=True)
            if src is not None and src.rootfs is not None:
                subprocess.run(["cp", "-a", str(src.rootfs), str(rootfs)], check=True)
            else:
                rootfs.mkdir()
        config.setdefault("Env", _env_list({"PATH": DEFAULT_PATH}))
        state = _State(Image(rootfs, layers, config, history), _env_dict(config))
        if rootfs is not None:
            state.snap = snapshot(rootfs)
        return state

    def _instruction(self, df: Dockerfile, index: int, built: dict[int, Image], state: _State,
                     ins: Instruction) -> None:
        config = state.image.config
        created_by = f"{ins.op} {' '.join(f'--{k}={v}' for k, v in ins.flags.items())}{' ' if ins.flags else ''}" \
                     f"{ins.args}"
        if ins.op == "ARG":
            for name, default in arg_declarations(ins, state.scope):
                value = self.build_args.get(name, default)
                if value is None and name in df.global_args:
                    value = self.build_args.get(name, df.global_args[name])
                state.args[name] = value if value is not None else ""
        elif ins.op == "ENV":
            for key, value in key_values(ins, state.scope):
                state.env[key] = value
            config["Env"] = _env_list(state.env)
        elif ins.op == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(key_values(ins, state.scope))
            config["Labels"] = labels
        elif ins.op == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for port in words(ins.args, state.scope, ins):
                number, _, proto = port.partition("/")
                if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                    raise ins.error(f"invalid port {port!r}")
                ports[f"{number}/{proto or 'tcp'}"] = {}
            config["ExposedPorts"] = ports
        elif ins.op == "USER":
            user = expand(ins.args, state.scope, ins)
            if not user or " " in user:
                raise ins.error(f"invalid user {ins.args!r}")
            config["User"] = user
        elif ins.op == "WORKDIR":
            workdir = expand(ins.args, state.scope, ins)
            config["WorkingDir"] = join_path(config.get("WorkingDir") or "/", workdir)
            if state.image.rootfs is not None:
                target = resolve_in_root(state.image.rootfs, config["WorkingDir"])
                target.mkdir(parents=True, exist_ok=True)
        elif ins.op in ("CMD", "ENTRYPOINT"):
            key = "Cmd" if ins.op == "CMD" else "Entrypoint"
            config[key] = ins.command()
            if ins.op == "CMD":
                state.cmd_set = True
            elif not state.cmd_set:
                config.pop("Cmd", None)  # docker: a new ENTRYPOINT drops the CMD it inherited
        elif ins.op == "COPY":
            if state.image.rootfs is not None:
                self._copy(df, index, built, state, ins)
        elif ins.op == "RUN":
            if state.image.rootfs is not None:
                self._run(state, ins)
        else:  # pragma: no cover - parse() refuses every other keyword
            raise ins.error("not supported")
        self._commit(state, ins, created_by)

    def _commit(self, state: _State, ins: Instruction, created_by: str) -> None:
        """The instruction's layer (if it changed the root) and its history entry."""
        entry: dict[str, Any] = {"created_by": created_by, "comment": f"ironlb.lab.imagebuild, line {ins.line}"}
        layer = None
        if state.image.rootfs is not None and ins.op in ("COPY", "RUN", "WORKDIR"):
            after = snapshot(state.image.rootfs)
            self._layer_seq += 1
            path = self.work / "layers" / f"{self._layer_seq:03d}.tar"
            path.parent.mkdir(parents=True, exist_ok=True)
            layer = write_layer(state.image.rootfs, state.snap, after, path, created_by, self.epoch)
            state.snap = after
            # ctime has the kernel's coarse clock: the next instruction's writes must land on a later tick.
            time.sleep(0.02)
        if layer is None:
            entry["empty_layer"] = True
        else:
            state.image.layers.append(layer)
        state.image.history.append(entry)

    def _run(self, state: _State, ins: Instruction) -> None:
        assert state.image.rootfs is not None
        config = state.image.config
        uid, gid = resolve_user(state.image.rootfs, config.get("User") or "0", ins)
        env = state.scope
        env.setdefault("PATH", DEFAULT_PATH)
        argv = ins.command()
        self.log(f"line {ins.line}: RUN {ins.args[:200]}")
        try:
            rc = self.runner(state.image.rootfs, argv, env, uid, gid, config.get("WorkingDir") or "/")
        except subprocess.TimeoutExpired as exc:
            raise ins.error(f"still running after {exc.timeout:g} s") from exc
        if rc != 0:
            raise ins.error(f"the command exited with status {rc}: {ins.args[:300]}")

    # COPY -----------------------------------------------------------------------------------------------------
    def _copy(self, df: Dockerfile, index: int, built: dict[int, Image], state: _State, ins: Instruction) -> None:
        root = state.image.rootfs
        assert root is not None
        args = ins.exec_form()
        if args is None:
            args = words(ins.args, state.scope, ins)
        if len(args) < 2:
            raise ins.error("needs a source and a destination")
        *srcs, dest_arg = args
        owner = None
        if "chown" in ins.flags:
            owner = resolve_user(root, expand(ins.flags["chown"], state.scope, ins), ins)
        mode = None
        if "chmod" in ins.flags:
            try:
                mode = int(ins.flags["chmod"], 8)
            except ValueError:
                raise ins.error(f"--chmod={ins.flags['chmod']}: only an octal mode is supported") from None
            if not 0 <= mode <= 0o7777:
                raise ins.error(f"--chmod={ins.flags['chmod']}: not a mode")
        if "from" in ins.flags:
            ref = expand(ins.flags["from"], state.scope, ins)
            other = built[df.stage(ref, index, ins).index]
            assert other.rootfs is not None
            sources = [self._stage_source(other.rootfs, s, ins) for s in srcs]
        else:
            sources = [p for s in srcs for p in self._context_sources(s, ins)]
        dest = join_path(state.image.config.get("WorkingDir") or "/", dest_arg)
        into_dir = dest_arg.endswith("/") or len(sources) > 1
        if len(sources) > 1 and not dest_arg.endswith("/"):
            raise ins.error("with more than one source the destination must be a directory ending in /")
        uid, gid = owner or (0, 0)
        for src in sources:
            src_host, filtered = src
            if src_host.is_dir():
                target = resolve_in_root(root, dest)
                _make_dirs(root, dest, uid, gid, ins)
                self._copy_tree(src_host, target, filtered, uid, gid, mode, ins)
            else:
                existing = resolve_in_root(root, dest)
                path = posixpath.join(dest, src_host.name) if into_dir or existing.is_dir() else dest
                _make_dirs(root, posixpath.dirname(path), uid, gid, ins)
                target = resolve_in_root(root, path, follow_last=False)
                _copy_file(src_host, target, uid, gid, mode)

    def _context_sources(self, pattern: str, ins: Instruction) -> list[tuple[Path, bool]]:
        rel = posixpath.normpath("/" + pattern).lstrip("/")
        if rel.startswith("..") or "\0" in rel:
            raise ins.error(f"{pattern!r} is outside the build context")
        if any(c in rel for c in "*?["):
            matches = sorted(p for p in self.context.glob(rel)
                             if not self.ignore.excluded(p.relative_to(self.context).as_posix()))
            if not matches:
                raise ins.error(f"no file in the build context matches {pattern!r}")
            return [(p, True) for p in matches]
        path = self.context / rel if rel != "." else self.context
        if rel != "." and (self.ignore.excluded(rel) or not (path.exists() or path.is_symlink())):
            raise ins.error(f"{pattern!r} is not in the build context (missing or excluded by .dockerignore)")
        if path.is_symlink():
            path = resolve_in_root(self.context, rel)
        return [(path, True)]

    def _stage_source(self, root: Path, pattern: str, ins: Instruction) -> tuple[Path, bool]:
        if any(c in pattern for c in "*?["):
            raise ins.error(f"COPY --from with a wildcard ({pattern!r}) is not supported here")
        path = resolve_in_root(root, pattern)
        if not (path.exists() or path.is_symlink()):
            raise ins.error(f"{pattern!r} does not exist in the source stage")
        return path, False

    def _copy_tree(self, src: Path, dest: Path, filtered: bool, uid: int, gid: int, mode: int | None,
                   ins: Instruction) -> None:
        for dirpath, dirnames, filenames in os.walk(src):
            here = Path(dirpath)
            rel_dir = here.relative_to(src)
            if filtered:
                dirnames[:] = [d for d in dirnames
                               if not self.ignore.prunable((here / d).relative_to(self.context).as_posix())]
            target_dir = dest / rel_dir
            if not target_dir.is_dir() or target_dir.is_symlink():
                if target_dir.is_symlink() or target_dir.exists():
                    target_dir.unlink()
                target_dir.mkdir()
                shutil.copystat(here, target_dir, follow_symlinks=False)
                os.chown(target_dir, uid, gid)
                if mode is not None:
                    os.chmod(target_dir, mode)
            for name in sorted(filenames + [d for d in dirnames if (here / d).is_symlink()]):
                if filtered and self._ignored(here / name):
                    continue
                _copy_file(here / name, target_dir / name, uid, gid, mode)
            dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]

    def _ignored(self, path: Path) -> bool:
        return self.ignore.excluded(path.relative_to(self.context).as_posix())


def source_date_epoch(build_args: dict[str, str]) -> int | None:
    """The ``SOURCE_DATE_EPOCH`` build argument as seconds (None when not given); a malformed one is an error, as
    the specification asks, rather than a silently unreproducible build."""
    value = build_args.get("SOURCE_DATE_EPOCH")
    if value is None:
        return None
    if not value.isdigit() or len(value) > 12:
        raise DockerfileError(f"build argument SOURCE_DATE_EPOCH={value[:40]!r}: not a number of seconds")
    return int(value)


def context_files(context: Path, ignore: IgnoreRules) -> list[str]:
    """The files of the build context that .dockerignore lets through (relative paths, sorted)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(context):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not ignore.prunable((here / d).relative_to(context).as_posix()))
        for name in filenames:
            rel = (here / name).relative_to(context).as_posix()
            if not ignore.excluded(rel):
                out.append(rel)
    return sorted(out)


def _make_dirs(root: Path, path: str, uid: int, gid: int, ins: Instruction) -> None:
    """``mkdir -p`` inside the image; new directories get 0755 and the COPY's owner."""
    parts = [p for p in path.split("/") if p]
    for k in range(1, len(parts) + 1):
        target = resolve_in_root(root, "/" + "/".join(parts[:k]))
        if target.is_dir():
            continue
        if target.exists() or target.is_symlink():
            raise ins.error(f"/{'/'.join(parts[:k])} exists in the image and is not a directory")
        target.mkdir(mode=0o755)
        os.chmod(target, 0o755)
        os.chown(target, uid, gid)


def _copy_file(src: Path, dest: Path, uid: int, gid: int, mode: int | None) -> None:
    """One file or symlink, with its mode and mtime, owned by ``uid:gid``; replaces what ``dest`` was."""
    if dest.is_symlink() or dest.exists():
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        else:
            dest.unlink()
    if src.is_symlink():
        os.symlink(os.readlink(src), dest)
        os.lchown(dest, uid, gid)
        return
    if not src.is_file():
        return  # sockets, fifos, devices: docker does not copy them either
    shutil.copy2(src, dest, follow_symlinks=False)
    os.chown(dest, uid, gid)
    if mode is not None:
        os.chmod(dest, mode)


# ---- output ------------------------------------------------------------------------------------------------------
def write_docker_archive(image: Image, ref: str, path: Path, epoch: int = DEFAULT_EPOCH) -> int:
    """``image`` as ``docker save`` writes it (manifest.json, the configuration, one tar per layer), which
    ``ctr -n k8s.io images import`` reads; its size in bytes. ``epoch`` is the image's creation time and every
    member's mtime: the same image gives the same archive, byte for byte."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    config = {key: value for key, value in image.config.items() if value not in (None, "", [], {})}
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in image.layers]},
        "history": image.history,
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    layer_names = [f"{layer.diff_id.removeprefix('sha256:')}/layer.tar" for layer in image.layers]
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": layer_names}]
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, config_name, config_bytes, epoch)
        seen = set()
        for name, layer in zip(layer_names, image.layers, strict=True):
            if name not in seen:
                seen.add(name)
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = layer.path.stat().st_size, 0o644, epoch
                with layer.path.open("rb") as f:
                    tar.addfile(info, f)
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode(), epoch)
    tmp.replace(path)
    return path.stat().st_size


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, mtime
    tar.addfile(info, io.BytesIO(data))


def layer_members(layer: Layer) -> Iterator[tarfile.TarInfo]:
    """The entries of a layer (for tests and checks)."""
    with tarfile.open(layer.path) as tar:
        yield from tar.getmembers()


def _member_digests(path: Path, limit: int) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    with tarfile.open(path) as tar:
        for n, m in enumerate(tar):
            if n >= limit:
                raise ValueError(f"{path}: more than {limit} members")
            digest = ""
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                h = hashlib.sha256()
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                digest = h.hexdigest()[:16]
            out[m.name] = (m.type, oct(m.mode), m.uid, m.gid, m.mtime, m.size, m.linkname, digest, m.pax_headers)
    return out


def layer_differences(a: Path, b: Path, limit: int = 200_000) -> list[str]:
    """What differs between two layer tars, member by member (type, mode, owner, mtime, size, link, contents,
    pax headers): empty when they are the same. What a reproducibility check prints when digests differ."""
    ma, mb = _member_digests(a, limit), _member_digests(b, limit)
    diffs = [f"only in {a.name}: {n}" for n in sorted(ma.keys() - mb.keys())]
    diffs += [f"only in {b.name}: {n}" for n in sorted(mb.keys() - ma.keys())]
    fields = ("type", "mode", "uid", "gid", "mtime", "size", "linkname", "sha256", "pax")
    for name in sorted(ma.keys() & mb.keys()):
        if ma[name] != mb[name]:
            what = [f"{f} {x!r} != {y!r}" for f, x, y in zip(fields, ma[name], mb[name], strict=True) if x != y]
            diffs.append(f"{name}: {', '.join(what)}")
    if not diffs and file_sha256(a) != file_sha256(b):
        diffs.append("same members, different bytes (member order or tar headers)")
    return diffs
