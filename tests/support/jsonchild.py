"""The child side of the JSON-lines harness (:mod:`tests.support.jsonlines` is the parent's): one command loop for
the helper programs that the netns tests and benchmarks run in a namespace.

A child is a module run as ``python -m tests.<pkg>.<name>_proc`` from the repository root (:func:`child_argv` with
``cwd=REPO``), so it imports ``tests.support`` as any test does. Only the standard library here: a child starts
fast.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
"""The repository root: the working directory a child starts in."""

Handler = Callable[[dict[str, Any]], dict[str, Any] | None]


def child_argv(module: str, *args: str) -> list[str]:
    """The command that runs the child ``module`` (e.g. ``tests.bfd.bfd_proc``) with this interpreter; start it
    with ``cwd=REPO``."""
    return [sys.executable, "-m", module, *args]


def emit(obj: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed (the parent is waiting for it)."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


async def serve(handle: Handler, *, stop: Collection[str] = ("close",)) -> None:
    """Say ``{"ready": true}``, then run one ``{"cmd": ...}`` per stdin line through ``handle`` and emit its
    answer (None: no answer), until EOF or a command named in ``stop``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit({"ready": True})
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] in stop:
            break
        answer = handle(cmd)
        if answer is not None:
            emit(answer)
