"""The last valid configuration of ``ironlb run``, kept on disk so that a restart can run it again.

While the state directory holds a refused or invalid file, a running node keeps its last valid configuration in
memory; a node restarted meanwhile would have none and announce nothing. So every valid read of the state
directory is saved (the manifests' texts, as read) in the node's data directory, and a node that starts with an
unusable state directory runs what was saved, still reporting the error that names the refused file.

The file is written atomically (temporary file, then rename) with mode 0600: the manifests may hold Secrets
(BGP passwords). It is read back with the same size bound as the state directory as a whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ironlb.config import ConfigError
from ironlb.config.reading import read_text

FILE_NAME = "last-valid.json"
VERSION = 1


@dataclass(frozen=True)
class Saved:
    """What a previous run saved: the manifests' ``(path, text)`` pairs and when (Unix time)."""

    texts: tuple[tuple[str, str], ...]
    saved_at: float
    path: Path


def digest(texts: list[tuple[str, str]]) -> str:
    """Identifies a set of texts, so an unchanged configuration is not rewritten on every read."""
    h = hashlib.sha256()
    for path, text in texts:
        for part in (path, text):
            data = part.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)
    return h.hexdigest()


def save(directory: Path, texts: list[tuple[str, str]], now: float) -> Path:
    """Write ``texts`` to ``directory``/last-valid.json atomically (mode 0600); OSError if it cannot."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = directory / FILE_NAME
    fd, tmp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"version": VERSION, "savedAt": now, "files": [[p, t] for p, t in texts]}, out)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def load(directory: Path, limit: int) -> Saved | None:
    """What was saved in ``directory`` (None if nothing was); ConfigError naming the file if it is unusable."""
    path = directory / FILE_NAME
    if not path.exists():
        return None
    text = read_text(path, limit)
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} file")
        files = doc["files"]
        texts = tuple((str(p), str(t)) for p, t in files)
        saved_at = float(doc["savedAt"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: unusable saved configuration: {err}") from None
    return Saved(texts, saved_at, path)
