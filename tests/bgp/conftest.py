"""FRR-in-a-namespace helpers for the BGP interop tests (lab-notes.md recipe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironlb.lab.frr import FRRInstance
from ironlb.lab.frr import frr_missing as lab_frr_missing
from ironlb.lab.jsonlines import ChildExited, JsonLineReader
from tests.netns import NetnsLab, netns_available

FRR_DIR = Path("/usr/lib/frr")
HERE = Path(__file__).resolve().parent


def frr_missing() -> str | None:
    """None when FRR's daemons and vtysh are installed, else why not."""
    return lab_frr_missing(("zebra", "bgpd"))


FRR = FRRInstance


class Speaker:
    """speaker_proc.py running in a namespace; JSON lines both ways."""

    def __init__(self, lab: NetnsLab, ns: str, config: dict[str, Any]) -> None:
        self.proc = lab.popen(
            ns,
            [sys.executable, str(HERE / "speaker_proc.py"), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(HERE.parent.parent / "src")},
        )
        self.lines: list[dict[str, Any]] = []
        assert self.proc.stdout is not None
        self._reader = JsonLineReader(self.proc.stdout)
        assert self.read(10) == {"ready": True}

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            msg = self._reader.read(timeout)
        except TimeoutError:
            raise TimeoutError("speaker did not answer") from None
        except ChildExited:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"speaker exited with {self.proc.wait()}: {err}") from None
        self.lines.append(msg)
        return msg

    def wait_for(self, key: str, value: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {key}={value} from speaker; saw {self.lines}")
            msg = self.read(left)
            if msg.get(key) == value:
                return msg

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()


@pytest.fixture
def netns_lab() -> Iterator[NetnsLab]:
    reason = netns_available() or frr_missing()
    if reason:
        pytest.skip(reason)
    lab = NetnsLab()
    try:
        yield lab
    finally:
        lab.cleanup()
