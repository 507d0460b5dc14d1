"""The Dockerfile reader and the image builder of the lab (ironlb.lab.dockerfile, ironlb.lab.imagebuild) on small
Dockerfiles: what docker would do for each instruction, a clear error naming the line for what it cannot do, and the
layers (changed paths, whiteouts) that a RUN or COPY leaves. The RUN test runs a real chroot (root only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from ironlb.lab.dockerfile import DockerfileError, IgnoreRules, Instruction, expand, instructions, parse, words
from ironlb.lab.imagebuild import (
    DEFAULT_PATH,
    BaseImage,
    Builder,
    Image,
    resolve_in_root,
    write_docker_archive,
    write_rootfs_layer,
)

REPO = Path(__file__).resolve().parents[2]
WHERE = Instruction(1, "ENV", {}, "x")


def members(image: Image, index: int) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(image.layers[index].path) as tar:
        return {m.name: m for m in tar.getmembers()}


def no_base(name: str, ins: Instruction) -> BaseImage:
    raise ins.error(f"no base {name}")


def config_of(text: str, base: dict[str, object] | None = None, **kw: object) -> dict[str, object]:
    def resolve(name: str, ins: Instruction) -> BaseImage:
        return BaseImage(dict(base or {}), lambda: Image(None, [], {}, []))

    return Builder(Path("/nonexistent"), Path("/nonexistent"), resolve, config_only=True, **kw).build(text).config  # type: ignore[arg-type]


# ---- reading ---------------------------------------------------------------------------------------------------
def test_continuations_comments_and_directives_are_read_as_docker_does() -> None:
    text = ("# syntax=docker/dockerfile:1\n# escape=\\\n\n# a comment\nFROM a AS b\nRUN one \\\n# dropped\n"
            "  two \\   \n\n  three\nenv K=V\n")
    got = instructions(text)
    assert [(i.line, i.op, i.args) for i in got] == [(5, "FROM", "a AS b"), (6, "RUN", "one two three"),
                                                     (11, "ENV", "K=V")]


@pytest.mark.parametrize(("text", "message"), [
    ("FROM a\nADD x /x\n", "Dockerfile:2: ADD: not supported"),
    ("FROM a\nHEALTHCHECK NONE\n", "Dockerfile:2: HEALTHCHECK: not supported"),
    ("FROM a\n\nFROBNICATE x\n", "Dockerfile:3: FROBNICATE: unknown instruction"),
    ("# escape=`\nFROM a\n", "Dockerfile:1: escape=`"),
    ("FROM a\nRUN\n", "Dockerfile:2: RUN: needs at least one argument"),
    ("FROM a\nCOPY --link a b\n", "Dockerfile:2: COPY: flag '--link' is not supported"),
    ("FROM a\nRUN --mount=type=cache,target=/x true\n", "Dockerfile:2: RUN: flag"),
    ("FROM --platform=linux/arm64 a\n", "Dockerfile:1: FROM: flag"),
    ("ENV A=1\nFROM a\n", "Dockerfile:1: ENV: only ARG may come before the first FROM"),
    ("ARG A=1\n", "no FROM instruction"),
    ("FROM a AS x\nFROM b AS X\n", "Dockerfile:2: FROM: duplicate stage name 'x'"),
    ("FROM a b c d\n", "Dockerfile:1: FROM: expected 'FROM <image> [AS <name>]'"),
    ("ARG IMG\nFROM ${IMG}\n", "Dockerfile:2: FROM: '${IMG}' expands to an empty image name"),
    ("FROM a\nENV A='x\n", "Dockerfile:2: ENV: unterminated single quote"),
    ("FROM a\nENV A=\"x\n", "Dockerfile:2: ENV: unterminated double quote"),
    ("FROM a\nENV A=${B\n", "Dockerfile:2: ENV: missing '}'"),
    ("FROM a\nENV A=${B:?err}\n", "Dockerfile:2: ENV: unsupported variable reference"),
    ("FROM a\nENV 1A=x\n", "Dockerfile:2: ENV: '1A' is not a variable name"),
    ("FROM a\nENV A\n", "Dockerfile:2: ENV: A has no value"),
    ("FROM a\nENV A=1 B\n", "Dockerfile:2: ENV: 'B': expected KEY=VALUE"),
    ("FROM a\nARG A-B\n", "Dockerfile:2: ARG: 'A-B' is not a variable name"),
    ("FROM a\nEXPOSE 99999\n", "Dockerfile:2: EXPOSE: invalid port"),
    ("FROM a\nUSER\tx y\n", "Dockerfile:2: USER: invalid user"),
])
def test_malformed_or_unsupported_input_fails_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        config_of(text)
    assert message in str(err.value)


def test_hostile_sizes_are_refused() -> None:
    with pytest.raises(DockerfileError, match="larger than"):
        instructions("FROM a\n" + "# x\n" * 300_000)
    with pytest.raises(DockerfileError, match="more than 2000 instructions"):
        instructions("FROM a\n" + "ENV A=1\n" * 2001)
    with pytest.raises(DockerfileError, match="more than 64 stages"):
        parse("".join(f"FROM a AS s{i}\n" for i in range(65)))
    # A line continued to the end of the file is still one instruction; binary junk is an unknown instruction.
    assert instructions("FROM a \\\n")[0].args == "a"
    with pytest.raises(DockerfileError, match="Dockerfile:1: .*unknown instruction"):
        instructions("\x00\x01\x02 x\n")


def test_variables_expand_like_docker() -> None:
    env = {"A": "1", "E": "", "P": "/x y"}
    assert words("$A ${A} \\$A '$A' \"$A $P\" ${B:-d} ${E:-d} ${E-d} ${A:+s} ${B:+s}x $ end", env, WHERE) == [
        "1", "1", "$A", "$A", "1 /x y", "d", "d", "", "s", "x", "$", "end"]
    assert expand(" /a b/$A ", env, WHERE) == "/a b/1"
    assert words("a\\ b \"c\\\"d\"", {}, WHERE) == ["a b", 'c"d']


def test_env_arg_and_stage_scoping() -> None:
    text = """\
ARG BASE=img
ARG ONLY_GLOBAL=g
FROM ${BASE} AS one
ARG BASE
ARG LOCAL=l
ENV PATH=/opt/bin:$PATH A="x $LOCAL" B=$ONLY_GLOBAL LEGACY_CHECK=1
ENV OLD spaced  value
WORKDIR /w
WORKDIR sub/$BASE
USER 65534:65534
LABEL org.example.v="1 2"
EXPOSE 8080 53/udp
CMD ["serve"]
FROM one
ENTRYPOINT ironlb run
"""
    first = config_of(text.split("FROM one")[0], base={"Env": ["PATH=/usr/bin"], "Cmd": ["python3"]})
    assert first["Env"] == ["PATH=/opt/bin:/usr/bin", "A=x l", "B=", "LEGACY_CHECK=1", "OLD=spaced value"]
    assert first["WorkingDir"] == "/w/sub/img" and first["User"] == "65534:65534" and first["Cmd"] == ["serve"]
    assert first["Labels"] == {"org.example.v": "1 2"}
    assert first["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    second = config_of(text, base={"Env": ["PATH=/usr/bin"], "Cmd": ["python3"]})
    # FROM an earlier stage keeps its configuration; an ENTRYPOINT drops the CMD it inherited.
    assert second["Entrypoint"] == ["/bin/sh", "-c", "ironlb run"] and "Cmd" not in second
    assert second["User"] == "65534:65534"
    same_stage = config_of("FROM a\nCMD [\"x\"]\nENTRYPOINT [\"y\"]\n")
    assert same_stage["Cmd"] == ["x"] and same_stage["Entrypoint"] == ["y"]
    assert config_of("FROM ${X:-a}\n", build_args={"X": "b"})["Env"] == [f"PATH={DEFAULT_PATH}"]
    with pytest.raises(DockerfileError, match="Dockerfile:2: FROM: no base zz"):
        Builder(Path("/"), Path("/"), no_base, config_only=True).build("ARG I=zz\nFROM $I\n")


def test_dockerignore_rules() -> None:
    rules = IgnoreRules.parse((REPO / ".dockerignore").read_text())
    assert not rules.excluded("pyproject.toml") and not rules.excluded("src/ironlb/cli.py")
    assert rules.excluded(".git/config") and rules.excluded("tests/conftest.py")
    assert rules.excluded("src/ironlb/__pycache__/cli.cpython-311.pyc") and rules.excluded("src/ironlb.egg-info")
    assert rules.prunable(".venv") and not rules.prunable("src")
    deep = IgnoreRules.parse("*\n!keep/**/x.txt\n")
    assert not deep.excluded("keep/a/b/x.txt") and deep.excluded("keep/a/y.txt") and not deep.prunable("keep")
    with pytest.raises(DockerfileError, match=r"\.dockerignore:2: unterminated"):
        IgnoreRules.parse("ok\n[bad\n")


# ---- building --------------------------------------------------------------------------------------------------
def test_resolve_in_root_never_leaves_the_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/etc", tmp_path / "abs")
    os.symlink("../../../..", tmp_path / "up")
    os.symlink("loop", tmp_path / "loop")
    assert resolve_in_root(tmp_path, "/abs/passwd") == tmp_path / "etc" / "passwd"
    assert resolve_in_root(tmp_path, "up/etc/x") == tmp_path / "etc" / "x"
    assert resolve_in_root(tmp_path, "/../../abs", follow_last=False) == tmp_path / "abs"
    with pytest.raises(OSError, match="too many levels"):
        resolve_in_root(tmp_path, "/loop/x")


def _context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "src" / "pkg" / "__pycache__").mkdir(parents=True)
    (ctx / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (ctx / "src" / "pkg" / "__pycache__" / "mod.pyc").write_bytes(b"junk")
    (ctx / "src" / "run.sh").write_text("#!/bin/sh\n")
    (ctx / "src" / "run.sh").chmod(0o755)
    os.symlink("mod.py", ctx / "src" / "pkg" / "alias.py")
    (ctx / "README.md").write_text("readme\n")
    (ctx / "secret.txt").write_text("no\n")
    (ctx / ".dockerignore").write_text("*\n!src\n!README.md\n**/__pycache__\n")
    return ctx


class FakeRunner:
    """Stands for the chroot: records what RUN asked for and changes the root as the command would."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict[str, str], int, int, str]] = []

    def __call__(self, root: Path, argv: list[str], env: dict[str, str], uid: int, gid: int, cwd: str) -> int:
        self.calls.append((argv, env, uid, gid, cwd))
        if argv[-1] == "fail":
            return 3
        (root / "app" / "made.txt").write_text("made\n")
        (root / "app" / "README.md").unlink()
        shutil.rmtree(root / "app" / "pkg")
        return 0


def test_copy_run_and_layers_with_a_fake_runner(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    runner = FakeRunner()
    text = """\
FROM scratch AS build
ARG V=1
WORKDIR /app
COPY README.md src ./
COPY --chmod=600 src/pkg/mod.py /single/renamed.py
FROM scratch
COPY --from=build /app /app
COPY --from=0 --chown=65534:65534 /single/ /owned/
ENV E=2
RUN ["do", "it"]
"""
    image = Builder(ctx, tmp_path / "work", no_base, runner=runner).build(text)
    assert image.rootfs is not None
    # COPY src ./ copies the directory's contents; .dockerignore keeps __pycache__ and secret.txt out.
    assert sorted(p.relative_to(image.rootfs).as_posix() for p in image.rootfs.rglob("*")) == [
        "app", "app/made.txt", "app/run.sh", "owned", "owned/renamed.py"]
    first = members(image, 0)
    assert set(first) == {"app", "app/README.md", "app/pkg", "app/pkg/alias.py", "app/pkg/mod.py", "app/run.sh"}
    assert first["app/pkg/alias.py"].issym() and first["app/pkg/alias.py"].linkname == "mod.py"
    assert first["app/run.sh"].mode & 0o777 == 0o755 and first["app/run.sh"].uid == 0
    owned = members(image, 1)
    assert owned["owned/renamed.py"].uid == 65534 and owned["owned/renamed.py"].mode & 0o777 == 0o600
    # The RUN's layer: the new file, and whiteouts for what it removed (one for the whole directory).
    run_layer = members(image, 2)
    assert set(run_layer) == {"app", "app/made.txt", "app/.wh.README.md", "app/.wh.pkg"}
    [(argv, env, uid, gid, cwd)] = runner.calls
    assert argv == ["do", "it"] and (uid, gid, cwd) == (0, 0, "/") and env["E"] == "2" and "V" not in env
    assert [h.get("empty_layer", False) for h in image.history] == [False, False, True, False]

    with pytest.raises(DockerfileError, match="Dockerfile:2: RUN: the command exited with status 3"):
        Builder(ctx, tmp_path / "w2", no_base, runner=runner).build("FROM scratch\nRUN fail\n")
    bad = {
        "FROM scratch\nCOPY secret.txt /\n": "Dockerfile:2: COPY: 'secret.txt' is not in the build context",
        "FROM scratch\nCOPY ../x /\n": "Dockerfile:2: COPY: '../x' is not in the build context",
        "FROM scratch\nCOPY nope*.txt /\n": "Dockerfile:2: COPY: no file in the build context matches",
        "FROM scratch\nCOPY README.md src /x\n": "the destination must be a directory ending in /",
        "FROM scratch\nCOPY --from=later /x /\nFROM scratch AS later\n": "'later' is not an earlier stage",
        "FROM scratch\nCOPY --chown=nobody README.md /\n": "user 'nobody' is not in the image's /etc/passwd",
        "FROM scratch\nCOPY --chmod=u+x README.md /\n": "only an octal mode",
    }
    for n, (dockerfile, message) in enumerate(bad.items()):
        with pytest.raises(DockerfileError, match=message.replace("(", r"\(")):
            Builder(ctx, tmp_path / f"bad{n}", no_base, runner=runner).build(dockerfile)


def test_docker_archive_layout(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("nobody:x:65534:65534::/:/bin/false\n")
    (root / "proc" / "junk").mkdir(parents=True)
    layer = write_rootfs_layer(root, tmp_path / "base.tar", "base")
    with tarfile.open(layer.path) as tar:
        assert sorted(tar.getnames()) == ["etc", "etc/passwd", "proc"]
    base = BaseImage({"Cmd": ["sh"]}, lambda: Image(root, [layer], {"Cmd": ["sh"]}, [{"created_by": "base"}]))
    image = Builder(tmp_path, tmp_path / "work", lambda n, i: base).build("FROM base\nUSER nobody\n")
    out = tmp_path / "image.tar"
    write_docker_archive(image, "example:1", out)
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["example:1"]
        assert manifest[0]["Layers"] == [f"{layer.diff_id.removeprefix('sha256:')}/layer.tar"]
    assert config["rootfs"]["diff_ids"] == [layer.diff_id]
    assert config["config"] == {"Cmd": ["sh"], "User": "nobody", "Env": [f"PATH={DEFAULT_PATH}"]}
    assert len(config["history"]) == 2 and config["history"][1]["empty_layer"]


def _tiny_rootfs(root: Path) -> None:
    """/bin/sh (dash), rm and their libraries from this machine: enough for a shell-form RUN."""
    for d in ("bin", "tmp", "proc", "dev", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2(shutil.which("dash") or "/bin/dash", root / "bin" / "sh")
    shutil.copy2(shutil.which("rm") or "/bin/rm", root / "bin" / "rm")
    out = subprocess.run(["ldd", str(root / "bin" / "sh"), str(root / "bin" / "rm")], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        lib = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if lib.startswith("/") and not lib.endswith(":"):
            dest = root / lib.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(lib), dest)
    (root / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    (root / "etc" / "resolv.conf").write_text("")
    (root / "victim").write_text("x")


@pytest.mark.skipif(os.geteuid() != 0, reason="RUN needs root (chroot, mount and PID namespaces)")
def test_run_in_a_real_chroot(tmp_path: Path) -> None:
    root = tmp_path / "base"
    _tiny_rootfs(root)
    layer = write_rootfs_layer(root, tmp_path / "base.tar", "tiny")
    base = BaseImage({}, lambda: Image(root, [layer], {}, []))
    text = """\
FROM tiny
ENV GREETING="hello there"
RUN echo "$GREETING $$" > /said && rm /victim && test -e /proc/self/status && test -c /dev/null
USER nobody
WORKDIR /tmp
RUN echo "$PWD" > mine
"""
    image = Builder(tmp_path, tmp_path / "work", lambda n, i: base).build(text)
    assert image.rootfs is not None
    # PID 1 of its own namespace, the ENV in its environment, /proc and /dev mounted only while it ran.
    assert (image.rootfs / "said").read_text() == "hello there 1\n"
    assert not any((image.rootfs / "proc").iterdir()) and not any((image.rootfs / "dev").iterdir())
    mounts = Path("/proc/self/mounts").read_text()
    assert str(tmp_path) not in mounts
    assert set(members(image, 1)) == {"said", ".wh.victim"}
    mine = members(image, 2)["tmp/mine"]
    assert (mine.uid, mine.gid) == (65534, 65534)
    assert (image.rootfs / "tmp" / "mine").read_text() == "/tmp\n"
    with pytest.raises(DockerfileError, match="Dockerfile:2: RUN: the command exited with status 127"):
        Builder(tmp_path, tmp_path / "w2", lambda n, i: base).build("FROM tiny\nRUN [\"/no/such\"]\n")


def test_the_project_dockerfile_is_read_without_error() -> None:
    df = parse((REPO / "Dockerfile").read_text())
    assert [s.base for s in df.stages] == ["python:3.11-slim-bookworm"] * 2
    assert df.stages[0].name == "build"
