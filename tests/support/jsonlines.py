"""The parent side of the JSON-lines harness: start a child program (:mod:`tests.support.jsonchild` has its side)
and read its JSON-lines output with a timeout.

``select()`` on a Python file object is a trap: after a ``readline()`` the file may hold further complete lines in
its own buffer while the descriptor has nothing left, so ``select`` times out with an answer already there. This
reader does its own buffering on the raw descriptor instead.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from typing import IO, TYPE_CHECKING, Any

from tests.support.jsonchild import REPO, child_argv
from tests.support.waits import DEADLINE_SCALE

if TYPE_CHECKING:
    from ironlb.lab.netns import NetnsLab


def popen_child(lab: NetnsLab, ns: str, module: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start the child program ``module`` (``tests.bfd.bfd_proc``...) in ``ns``, stdin and stdout piped unless
    ``kwargs`` say otherwise; it runs from the repository root, so it imports ``tests.support`` as the tests do."""
    kwargs.setdefault("stdin", subprocess.PIPE)
    kwargs.setdefault("stdout", subprocess.PIPE)
    return lab.popen(ns, child_argv(module, *args), cwd=REPO, **kwargs)


class ChildExited(RuntimeError):
    """The child closed its output."""


class JsonLineReader:
    def __init__(self, stream: IO[str] | IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._buf = b""

    def read(self, timeout: float) -> dict[str, Any]:
        """The next JSON object; TimeoutError when none arrives in time, ChildExited at end of output."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from the child in time")
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise ChildExited("the child closed its output")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg: dict[str, Any] = json.loads(line)
        return msg


class JsonLinesChild:
    """A helper process that talks JSON lines both ways; every line it sent is kept in ``lines``.

    Expects ``{"ready": true}`` as the first line. Every timeout here bounds a wait for a line that should come
    (never the absence of one), so it is stretched by :data:`tests.support.waits.DEADLINE_SCALE` as the tests'
    other waits are: a child starting on a loaded machine can take seconds to import.
    """

    def __init__(self, proc: subprocess.Popen[str], name: str, ready_timeout: float = 10.0) -> None:
        self.proc = proc
        self.name = name
        self.lines: list[dict[str, Any]] = []
        assert proc.stdout is not None
        self._reader = JsonLineReader(proc.stdout)
        first = self.read(ready_timeout)
        if first != {"ready": True}:
            raise RuntimeError(f"{name} started with {first}")

    def read(self, timeout: float) -> dict[str, Any]:
        try:
            msg = self._reader.read(timeout * DEADLINE_SCALE)
        except TimeoutError:
            raise TimeoutError(f"{self.name} did not answer; saw {self.lines}") from None
        except ChildExited:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"{self.name} exited with {self.proc.wait()}: {err}") from None
        self.lines.append(msg)
        return msg

    def wait_for(self, key: str, value: Any, timeout: float) -> dict[str, Any]:
        """The next line with ``key == value``, reading (and keeping) the lines before it."""
        deadline = time.monotonic() + timeout * DEADLINE_SCALE
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {key}={value} from {self.name}; saw {self.lines}")
            msg = self.read(left / DEADLINE_SCALE)
            if msg.get(key) == value:
                return msg

    def seen(self, key: str, value: Any, timeout: float, since: int = 0) -> dict[str, Any]:
        """Like :meth:`wait_for`, but a line read earlier (from index ``since``) counts too."""
        for msg in self.lines[since:]:
            if msg.get(key) == value:
                return msg
        return self.wait_for(key, value, timeout)

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
