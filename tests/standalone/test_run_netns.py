"""``ironlb run`` on a LAN of three nodes in network namespaces, checked with real arping and a real client."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironlb.lab.lan import Lan, build_lan, new_secret, wait_for
from ironlb.lab.netns import NetnsLab, netns_available

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "examples" / "metallb-config.yaml").read_text()
SERVICE = (ROOT / "examples" / "my-service.yaml").read_text()
VIP = "192.168.1.240"


@pytest.fixture
def lan() -> Iterator[Lan]:
    reason = netns_available()
    if reason or shutil.which("arping") is None:
        pytest.skip(reason or "needs arping")
    lab = NetnsLab()
    try:
        yield build_lan(lab)
    finally:
        lab.cleanup()


class Cluster:
    def __init__(self, lan: Lan, tmp: Path) -> None:
        self.lan = lan
        self.state = tmp / "state"
        self.state.mkdir()
        self.secret = new_secret(tmp)
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, node: str, *extra: str) -> None:
        host = self.lan.node(node)
        cmd = [
            sys.executable, "-m", "ironlb", "run", "--state", str(self.state), "--node", node,
            "--members", self.lan.members_flag(), "--secret-file", str(self.secret),
            "--status-file", str(self.status_path(node)), "--log-level", "debug", *extra,
        ]
        log = open(self.tmp / f"{node}.log", "w")  # noqa: SIM115 - closed with the process
        self.procs[node] = self.lan.lab.popen(host.netns, cmd, stdout=log, stderr=subprocess.STDOUT)

    def status_path(self, node: str) -> Path:
        return self.tmp / f"{node}.status.json"

    def status(self, node: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.status_path(node).read_text())
        except (OSError, ValueError):
            return None
        return data

    def announcers(self, ip: str = VIP) -> list[str]:
        out = []
        for node, proc in self.procs.items():
            if proc.poll() is not None:  # a killed node's status file is stale
                continue
            st = self.status(node)
            if st and not st.get("stopped") and ip in st["announcing"]["layer2"]:
                out.append(node)
        return out

    def arping_macs(self, ip: str = VIP, count: int = 2) -> set[str]:
        assert self.lan.client is not None
        r = self.lan.lab.run(
            self.lan.client.netns, ["arping", "-c", str(count), "-w", "2000000", "-i", "eth0", ip], check=False, timeout=10
        )
        macs = set()
        for line in r.stdout.splitlines():
            # Habets arping: "60 bytes from 02:00:00:00:00:0b (192.168.1.240): index=0 time=..."
            if " from " in line and "bytes" in line:
                macs.add(line.split(" from ")[1].split()[0].lower())
        return macs

    def log(self, node: str) -> str:
        return (self.tmp / f"{node}.log").read_text()


def test_three_nodes_one_announcer_failover_and_leave(lan: Lan, tmp_path: Path) -> None:
    c = Cluster(lan, tmp_path)
    (c.state / "config.yaml").write_text(SEED)
    (c.state / "service.yaml").write_text(SERVICE)
    for node in ("node1", "node2", "node3"):
        c.start(node)
    def agreed() -> set[str]:
        plans = [c.status(n) for n in c.procs]
        return {p["services"]["default/my-service"]["layer2"]["node"] for p in plans if p}

    # Every node computes the same plan, and exactly the elected node announces.
    assert wait_for(lambda: len(c.announcers()) == 1 and agreed() == set(c.announcers()), 10), [c.log(n) for n in c.procs]
    first = c.announcers()[0]
    assert all((c.status(n) or {})["services"]["default/my-service"]["ingress"] == [VIP] for n in c.procs)
    assert c.arping_macs() == {lan.node(first).mac}

    # Kill -9 the announcer and cut its link: a survivor takes over, and only it answers.
    t0 = time.monotonic()
    c.procs[first].send_signal(signal.SIGKILL)
    lan.lab.run(lan.node(first).netns, ["ip", "link", "set", "eth0", "down"])
    assert wait_for(lambda: any(n != first for n in c.announcers()), 5)
    took = time.monotonic() - t0
    second = next(n for n in c.announcers() if n != first)
    assert took < 2.0, took
    assert c.arping_macs() == {lan.node(second).mac}

    # The dead node comes back: the election is per IP and stateless, so the IP returns to it.
    lan.lab.run(lan.node(first).netns, ["ip", "link", "set", "eth0", "up"])
    c.start(first)
    assert wait_for(lambda: c.announcers() == [first], 5)
    assert c.arping_macs() == {lan.node(first).mac}

    # A clean stop says goodbye (LEAVE): the next node takes over without waiting for the dead timeout.
    t0 = time.monotonic()
    c.procs[first].send_signal(signal.SIGTERM)
    c.procs[first].wait(timeout=5)
    assert c.procs[first].returncode == 0
    assert wait_for(lambda: c.announcers() == [second], 2)
    assert time.monotonic() - t0 < 1.0
    stopped = c.status(first)
    assert stopped and stopped.get("stopped") and stopped["announcing"]["layer2"] == []

    # Quorum: with two of three members gone, the survivor may be the minority side of a partition: it withdraws.
    c.procs[second].send_signal(signal.SIGKILL)
    third = next(n for n in ("node1", "node2", "node3") if n not in (first, second))
    assert wait_for(lambda: (c.status(third) or {}).get("members", {}).get("quorum") is False, 3)
    assert c.announcers() == []
    assert c.arping_macs(count=1) == set()


def test_state_changes_apply_fast_and_bad_config_keeps_the_last_good(lan: Lan, tmp_path: Path) -> None:
    c = Cluster(lan, tmp_path)
    (c.state / "config.yaml").write_text(SEED)
    for node in ("node1", "node2", "node3"):
        c.start(node)
    assert wait_for(lambda: all(c.status(n) for n in c.procs), 10)
    assert c.announcers() == []
    t0 = time.monotonic()
    (c.state / "service.yaml").write_text(SERVICE)
    assert wait_for(lambda: len(c.announcers()) == 1, 5)
    applied = time.monotonic() - t0
    assert applied < 1.0, applied
    owner = c.announcers()[0]
    assert c.arping_macs() == {lan.node(owner).mac}

    # Invalid config: reported, and the last good config keeps announcing.
    (c.state / "config.yaml").write_text(SEED.replace("192.168.1.240-192.168.1.250", "192.168.1.250-192.168.1.240"))
    assert wait_for(lambda: all((c.status(n) or {}).get("config", {}).get("valid") is False for n in c.procs), 5)
    err = c.status(owner)["config"]["error"]  # type: ignore[index]
    assert "is after the end IP" in err
    assert c.announcers() == [owner]
    assert c.arping_macs() == {lan.node(owner).mac}

    # Deleting the Service withdraws it.
    (c.state / "service.yaml").unlink()
    assert wait_for(lambda: c.announcers() == [], 5)
    assert c.arping_macs(count=1) == set()
