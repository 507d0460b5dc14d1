"""Reading manifest files within bounds: regular files only, a size limit per file and in total, UTF-8.

A state directory is written by people and tools, not by ironlb: a FIFO named ``x.yaml`` would block a plain
``open()`` forever, a symlink to ``/dev/zero`` would be read without end, and a stray binary file would raise
``UnicodeDecodeError``. Each of those is refused here with a :class:`ConfigError` that names the file and the
reason, like any other configuration error.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ironlb.config.errors import ConfigError

MiB = 1024 * 1024
MAX_FILE_BYTES = 8 * MiB
MAX_TOTAL_BYTES = 64 * MiB
MAX_FILES = 10_000
"""Directory entries a state directory may hold (a real cluster's configuration and Services fit many times)."""

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True)
class ReadLimits:
    """Bytes one file, and all the files of one load together, may hold; entries a state directory may hold."""

    file_bytes: int = MAX_FILE_BYTES
    total_bytes: int = MAX_TOTAL_BYTES
    files: int = MAX_FILES


DEFAULT_LIMITS = ReadLimits()


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n} bytes"


def read_bytes(path: str | Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The content of a regular file of at most ``limit`` bytes; ConfigError naming the file otherwise.

    Symlinks are followed (Kubernetes mounts ConfigMaps through them), but what they lead to must be a regular
    file: it is checked with ``stat`` before opening, and again with ``fstat`` on the descriptor, which is opened
    non-blocking so a file swapped for a FIFO in between cannot block.
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: refused: {_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise ConfigError(f"{path}: refused: {st.st_size} bytes, over the limit of {_size(limit)}")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: refused: {_kind(st.st_mode)}, not a regular file")
        chunks = []
        got = 0
        while got <= limit:
            chunk = os.read(fd, min(limit + 1 - got, MiB))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise ConfigError(f"{path}: refused: more than {_size(limit)} (it grew while read)")
        return b"".join(chunks)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)


def decode(path: str | Path, data: bytes) -> str:
    """UTF-8 text (as Kubernetes requires of manifests); ConfigError naming the file and the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: refused: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None


def read_text(path: str | Path, limit: int = MAX_FILE_BYTES) -> str:
    return decode(path, read_bytes(path, limit))


def read_texts(paths: Iterable[str | Path], limits: ReadLimits = DEFAULT_LIMITS) -> list[tuple[str, str]]:
    """``(path, text)`` of every file, or one ConfigError listing every file refused and why."""
    texts: list[tuple[str, str]] = []
    errors: list[str] = []
    total = 0
    for p in paths:
        try:
            data = read_bytes(p, limits.file_bytes)
            total += len(data)
            if total > limits.total_bytes:
                errors.append(f"{p}: refused: the files read together exceed {_size(limits.total_bytes)}")
                break
            texts.append((str(p), decode(p, data)))
        except ConfigError as err:
            errors += err.messages
    if errors:
        raise ConfigError(errors)
    return texts


_SIZE = re.compile(r"^\s*(\d+)\s*(|k|K|ki|Ki|KiB|m|M|mi|Mi|MiB|g|G|gi|Gi|GiB)\s*$")
_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


def parse_size(text: str) -> int:
    """``8388608``, ``8Mi``, ``8MiB``, ``8M`` (10^6) -> bytes; ValueError otherwise."""
    m = _SIZE.match(text)
    if m is None or int(m.group(1)) <= 0:
        raise ValueError(f"invalid size {text!r} (examples: 8388608, 8Mi, 64MiB)")
    count, unit = int(m.group(1)), str(m.group(2)).lower()
    return count * _UNITS[unit.removesuffix("b")]
