"""A Dockerfile, read the way ``docker build`` reads it: instructions, stages, variables and a .dockerignore.

The lab builds the ironlb image from the project's Dockerfile with no Docker (``ironlb.lab.imagebuild`` runs what
this module reads). Only the instructions that Dockerfile needs are accepted (FROM, ARG, ENV, WORKDIR, COPY, RUN,
USER, ENTRYPOINT, CMD, plus LABEL and EXPOSE, which only set the configuration); anything else is an error that
names the line, so an image is never built silently different from what ``docker build`` would make. No I/O here:
text in, instructions and values out.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field

MAX_DOCKERFILE = 1 << 20  # bytes: a Dockerfile is small; more is a mistake or hostile
MAX_INSTRUCTIONS = 2000
MAX_STAGES = 64
SUPPORTED = ("FROM", "ARG", "ENV", "WORKDIR", "COPY", "RUN", "USER", "ENTRYPOINT", "CMD", "LABEL", "EXPOSE")
# Real Dockerfile instructions the lab's builder does not run: named as such in the error.
KNOWN_UNSUPPORTED = ("ADD", "HEALTHCHECK", "ONBUILD", "SHELL", "VOLUME", "STOPSIGNAL", "MAINTAINER")
# Flags each instruction accepts here (``docker build`` knows more; any other is refused).
FLAGS: dict[str, tuple[str, ...]] = {"COPY": ("from", "chown", "chmod"), "FROM": (), "RUN": ()}


class DockerfileError(ValueError):
    """The Dockerfile cannot be built here; the message starts with ``<file>:<line>:``."""


@dataclass(frozen=True)
class Instruction:
    """One instruction: its first line, upper-case keyword, leading ``--flag=value`` options and the rest."""

    line: int
    op: str
    flags: dict[str, str]
    args: str
    source: str = "Dockerfile"

    def error(self, message: str) -> DockerfileError:
        return DockerfileError(f"{self.source}:{self.line}: {self.op}: {message}")

    def exec_form(self) -> list[str] | None:
        """The JSON array form (``["a", "b"]``), or None for the shell form (as docker: invalid JSON is shell)."""
        if not self.args.startswith("["):
            return None
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        return None

    def command(self) -> list[str]:
        """RUN, CMD and ENTRYPOINT: the exec form as is, the shell form through ``/bin/sh -c``."""
        argv = self.exec_form()
        return argv if argv is not None else ["/bin/sh", "-c", self.args]


@dataclass
class Stage:
    """A FROM and the instructions up to the next one."""

    index: int
    base: str  # the image or earlier stage name, variables expanded
    name: str | None
    frm: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]
    stages: list[Stage]

    def stage(self, ref: str, before: int, where: Instruction) -> Stage:
        """The stage a ``--from`` or ``FROM`` names (its ``AS`` name or its index), built before ``before``."""
        for st in self.stages[:before]:
            if st.name is not None and st.name == ref.lower():
                return st
        if ref.isdigit() and int(ref) < before:
            return self.stages[int(ref)]
        raise where.error(f"{ref!r} is not an earlier stage of this Dockerfile (copying from an image is not "
                          "supported here)")

    def is_stage(self, ref: str, before: int) -> bool:
        return any(st.name == ref.lower() for st in self.stages[:before])


# ---- lexing ------------------------------------------------------------------------------------------------------
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_CONTINUATION = re.compile(r"\\[ \t]*$")
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)=(\S*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def instructions(text: str, source: str = "Dockerfile") -> list[Instruction]:
    """The instructions of ``text``: parser directives, comments and line continuations handled as docker does."""
    if len(text.encode()) > MAX_DOCKERFILE:
        raise DockerfileError(f"{source}: larger than {MAX_DOCKERFILE} bytes")
    lines = text.splitlines()
    out: list[Instruction] = []
    i = 0
    # Parser directives: ``# name=value`` lines at the very top only.
    while i < len(lines) and (m := _DIRECTIVE.fullmatch(lines[i].strip())):
        name, value = m.group(1).lower(), m.group(2)
        if name == "escape" and value != "\\":
            raise DockerfileError(f"{source}:{i + 1}: escape={value}: only the default escape character \\ is "
                                  "supported")
        i += 1
    while i < len(lines):
        start = i
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = []
        while _CONTINUATION.search(line):
            parts.append(_CONTINUATION.sub("", line))
            # Comment lines inside a continued instruction are dropped, as docker does; blank ones too.
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                line = ""
                break
            line = lines[i]
            i += 1
        parts.append(line)
        joined = " ".join(p.strip() for p in parts if p.strip()).strip()
        word, *more = joined.split(None, 1)
        op = word.upper()
        rest = more[0].strip() if more else ""
        if op not in SUPPORTED:
            what = "not supported by the lab's image builder" if op in KNOWN_UNSUPPORTED else "unknown instruction"
            raise DockerfileError(f"{source}:{start + 1}: {word}: {what}")
        flags: dict[str, str] = {}
        if op in FLAGS:
            while rest.startswith("--"):
                flag, _, after = rest.partition(" ")
                m = _FLAG.fullmatch(flag)
                if m is None or m.group(1) not in FLAGS[op]:
                    raise DockerfileError(f"{source}:{start + 1}: {op}: flag {flag!r} is not supported")
                flags[m.group(1)] = m.group(2)
                rest = after.strip()
        if not rest:
            raise DockerfileError(f"{source}:{start + 1}: {op}: needs at least one argument")
        out.append(Instruction(start + 1, op, flags, rest, source))
        if len(out) > MAX_INSTRUCTIONS:
            raise DockerfileError(f"{source}: more than {MAX_INSTRUCTIONS} instructions")
    return out


def words(text: str, env: dict[str, str], where: Instruction, *, split: bool = True) -> list[str]:
    """Split ``text`` into words with quotes removed and ``$VAR``/``${VAR}`` expanded from ``env``, as docker does
    for ENV, ARG, LABEL, COPY, ...: nothing expands inside single quotes; ``\\`` escapes the next character."""
    out: list[str] = []
    cur: list[str] = []
    in_word = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t" and split:
            if in_word:
                out.append("".join(cur))
                cur, in_word = [], False
            i += 1
            continue
        in_word = True
        if ch == "\\":
            if i + 1 < n:
                cur.append(text[i + 1])
            i += 2
        elif ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise where.error(f"unterminated single quote in {text!r}")
            cur.append(text[i + 1:end])
            i = end + 1
        elif ch == '"':
            i += 1
            while True:
                if i >= n:
                    raise where.error(f"unterminated double quote in {text!r}")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and text[i + 1] in '"\\$':
                    cur.append(text[i + 1])
                    i += 2
                elif c == "$":
                    value, i = _variable(text, i, env, where)
                    cur.append(value)
                else:
                    cur.append(c)
                    i += 1
        elif ch == "$":
            value, i = _variable(text, i, env, where)
            cur.append(value)
        else:
            cur.append(ch)
            i += 1
    if in_word:
        out.append("".join(cur))
    return out


def expand(text: str, env: dict[str, str], where: Instruction) -> str:
    """``text`` as one word (WORKDIR, USER, FROM): quotes removed and variables expanded, spaces kept."""
    return "".join(words(text.strip(), env, where, split=False))


def _variable(text: str, i: int, env: dict[str, str], where: Instruction) -> tuple[str, int]:
    """The value of the reference at ``text[i] == "$"`` and the index after it."""
    if i + 1 < len(text) and text[i + 1] == "{":
        end = text.find("}", i + 2)
        if end < 0:
            raise where.error(f"missing '}}' in {text!r}")
        body = text[i + 2:end]
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])(.*))?", body, re.S)
        if m is None:
            raise where.error(f"unsupported variable reference ${{{body}}}")
        name, op, word = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name)
        if op is None:
            return value or "", end + 1
        alt = "".join(words(word, env, where, split=False))
        unset = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return (alt if unset else value or ""), end + 1
        return ("" if unset else alt), end + 1
    m = _NAME.match(text, i + 1)
    if m is None:
        return "$", i + 1
    return env.get(m.group(0), ""), m.end()


def key_values(ins: Instruction, env: dict[str, str]) -> list[tuple[str, str]]:
    """ENV and LABEL: ``KEY=VALUE ...`` (all words expanded against the values before this instruction), or the
    legacy ``KEY VALUE`` form (one pair, the value being the rest of the line)."""
    first, _, rest = ins.args.partition(" ")
    if "=" not in first:
        if not _NAME.fullmatch(first) and ins.op == "ENV":
            raise ins.error(f"{first!r} is not a variable name")
        if not rest.strip():
            raise ins.error(f"{first} has no value (use {first}=VALUE)")
        return [(first, " ".join(words(rest, env, ins)))]
    pairs = []
    for word in words(ins.args, env, ins):
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ins.error(f"{word!r}: expected KEY=VALUE")
        if ins.op == "ENV" and not _NAME.fullmatch(key):
            raise ins.error(f"{key!r} is not a variable name")
        pairs.append((key, value))
    return pairs


def arg_declarations(ins: Instruction, env: dict[str, str]) -> list[tuple[str, str | None]]:
    """ARG: names with their default value (expanded), or None when declared without one."""
    out: list[tuple[str, str | None]] = []
    for word in words(ins.args, env, ins):
        name, sep, default = word.partition("=")
        if not _NAME.fullmatch(name):
            raise ins.error(f"{name!r} is not a variable name")
        out.append((name, default if sep else None))
    return out


def parse(text: str, build_args: dict[str, str] | None = None, source: str = "Dockerfile") -> Dockerfile:
    """The stages of a Dockerfile, each FROM's image expanded with the global ARGs (and ``build_args``)."""
    build_args = build_args or {}
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for ins in instructions(text, source):
        if ins.op == "FROM":
            scope = {k: build_args.get(k, v) for k, v in global_args.items()}
            env = {k: v for k, v in scope.items() if v is not None}
            parts = words(ins.args, env, ins)
            if len(parts) == 3 and parts[1].lower() == "as":
                base, name = parts[0], parts[2].lower()
                if not re.fullmatch(r"[a-z][a-z0-9_.-]*", name):
                    raise ins.error(f"invalid stage name {parts[2]!r}")
                if any(st.name == name for st in stages):
                    raise ins.error(f"duplicate stage name {name!r}")
            elif len(parts) == 1:
                base, name = parts[0], None
            else:
                raise ins.error(f"expected 'FROM <image> [AS <name>]', got {ins.args!r}")
            if not base:
                raise ins.error(f"{ins.args!r} expands to an empty image name")
            stages.append(Stage(len(stages), base, name, ins))
            if len(stages) > MAX_STAGES:
                raise ins.error(f"more than {MAX_STAGES} stages")
        elif not stages:
            if ins.op != "ARG":
                raise ins.error("only ARG may come before the first FROM")
            env = {k: v for k, v in global_args.items() if v is not None}
            for name, default in arg_declarations(ins, env):
                global_args[name] = default
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise DockerfileError(f"{source}: no FROM instruction")
    return Dockerfile(global_args, stages)


def join_path(workdir: str, path: str) -> str:
    """A path of the image: absolute, normalised, relative ones under ``workdir``."""
    return posixpath.normpath(posixpath.join(workdir, path)) if path else workdir


# ---- .dockerignore -----------------------------------------------------------------------------------------------
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"unterminated '[' in {pattern!r}")
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body).replace("\\", "\\\\") + "]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 1
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class IgnoreRules:
    """The patterns of a .dockerignore: the last pattern matching a path, or one of its parent directories,
    decides; a ``!`` pattern takes the path back in."""

    rules: tuple[tuple[re.Pattern[str], bool], ...]
    # The literal start (before any wildcard) of each ``!`` pattern: what a walk must not prune.
    kept_prefixes: tuple[tuple[str, bool], ...] = ()

    @classmethod
    def parse(cls, text: str, source: str = ".dockerignore") -> IgnoreRules:
        rules = []
        kept: list[tuple[str, bool]] = []
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = posixpath.normpath(line[1:].strip() if negate else line).lstrip("/")
            try:
                rules.append((_pattern_regex(pattern), negate))
            except (ValueError, re.error) as exc:
                raise DockerfileError(f"{source}:{n}: {exc}") from exc
            if negate:
                literal = re.split(r"[*?\[\\]", pattern, maxsplit=1)[0]
                kept.append((literal, literal != pattern))
        return cls(tuple(rules), tuple(kept))

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``/``-separated) stays out of the build context."""
        parts = path.strip("/").split("/")
        candidates = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        verdict = False
        for regex, negate in self.rules:
            if any(regex.fullmatch(c) for c in candidates):
                verdict = not negate
        return verdict

    def prunable(self, directory: str) -> bool:
        """Whether a walk may skip everything under ``directory``: it is excluded and no ``!`` pattern can match a
        path below it (one that matches the directory itself or a parent is already in its verdict)."""
        below = directory.strip("/") + "/"
        if not self.excluded(directory):
            return False
        for prefix, wildcard in self.kept_prefixes:
            if prefix.startswith(below) or (wildcard and below.startswith(prefix)):
                return False
        return True
