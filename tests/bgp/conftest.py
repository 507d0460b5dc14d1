"""FRR-in-a-namespace helpers for the BGP interop tests (lab-notes.md recipe)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironlb.lab.frr import FRRInstance
from ironlb.lab.frr import frr_missing as lab_frr_missing
from tests.support.jsonlines import JsonLinesChild, popen_child
from tests.support.netns import NetnsLab, fresh_lab

FRR_DIR = Path("/usr/lib/frr")


def frr_missing() -> str | None:
    """None when FRR's daemons and vtysh are installed, else why not."""
    return lab_frr_missing(("zebra", "bgpd"))


FRR = FRRInstance


class Speaker(JsonLinesChild):
    """speaker_proc.py running in a namespace; JSON lines both ways."""

    def __init__(self, lab: NetnsLab, ns: str, config: dict[str, Any]) -> None:
        proc = popen_child(lab, ns, "tests.bgp.speaker_proc", json.dumps(config), stderr=subprocess.PIPE)
        super().__init__(proc, "speaker")


@pytest.fixture
def netns_lab() -> Iterator[NetnsLab]:
    with fresh_lab(frr_missing()) as lab:
        yield lab
