"""A LAN of three nodes running ``ironlb run``, and the client's view of it (arping, ndisc6)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironlb.lab.lan import Lan, build_lan, new_secret
from ironlb.lab.netns import NetnsLab, netns_available

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

    def arping_macs(self, ip: str = VIP, count: int = 2, client_ns: str | None = None) -> set[str]:
        """Every MAC that answers ARP for ``ip`` from the client (several MACs would be a split brain)."""
        assert self.lan.client is not None
        ns = client_ns or self.lan.client.netns
        r = self.lan.lab.run(ns, ["arping", "-c", str(count), "-w", "2000000", "-i", "eth0", ip], check=False, timeout=10)
        macs = set()
        for line in r.stdout.splitlines():
            # Habets arping: "60 bytes from 02:00:00:00:00:0b (192.168.1.240): index=0 time=..."
            if " from " in line and "bytes" in line:
                macs.add(line.split(" from ")[1].split()[0].lower())
        return macs

    def converged(self) -> bool:
        """Every running node sees every running node alive (a late starter can still take an IP over)."""
        running = sorted(n for n, p in self.procs.items() if p.poll() is None)
        return all((self.status(n) or {}).get("members", {}).get("alive") == running for n in running)

    def metrics(self, node: str) -> str:
        """The node's /metrics page, fetched inside its namespace."""
        fetch = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9120/metrics', timeout=5).read().decode())"
        return self.lan.lab.run(self.lan.node(node).netns, [sys.executable, "-c", fetch]).stdout

    def log(self, node: str) -> str:
        return (self.tmp / f"{node}.log").read_text()

    def ndisc_mac(self, ip: str, client_ns: str | None = None, dev: str = "eth0") -> str | None:
        """The MAC ``ndisc6`` resolves for ``ip`` from the client, or None."""
        assert self.lan.client is not None
        ns = client_ns or self.lan.client.netns
        r = self.lan.lab.run(ns, ["ndisc6", "-1", "-r", "2", "-w", "500", ip, dev], check=False, timeout=10)
        for line in r.stdout.splitlines():
            if "Target link-layer address" in line:
                return line.split(":", 1)[1].strip().lower()
        return None
