"""FRR-in-a-namespace helpers for the BGP interop tests (lab-notes.md recipe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironlb.lab.frr import FRRInstance
from ironlb.lab.frr import frr_missing as lab_frr_missing
from tests.support.jsonlines import JsonLinesChild
from tests.support.netns import NetnsLab, fresh_lab

FRR_DIR = Path("/usr/lib/frr")
HERE = Path(__file__).resolve().parent


def frr_missing() -> str | None:
    """None when FRR's daemons and vtysh are installed, else why not."""
    return lab_frr_missing(("zebra", "bgpd"))


FRR = FRRInstance


class Speaker(JsonLinesChild):
    """speaker_proc.py running in a namespace; JSON lines both ways."""

    def __init__(self, lab: NetnsLab, ns: str, config: dict[str, Any]) -> None:
        proc = lab.popen(
            ns,
            [sys.executable, str(HERE / "speaker_proc.py"), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(HERE.parent.parent / "src")},
        )
        super().__init__(proc, "speaker")


@pytest.fixture
def netns_lab() -> Iterator[NetnsLab]:
    with fresh_lab(frr_missing()) as lab:
        yield lab
