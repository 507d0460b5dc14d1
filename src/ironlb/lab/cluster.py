"""A standalone ironlb cluster on a lab LAN, as ``ironlb demo`` runs it.

:class:`StandaloneCluster` starts one ``ironlb run`` per node namespace on a common state directory, kills nodes
the way a machine dies (link down and ``kill -9``), restarts them, and reads their status files.
:class:`ClientProbe` runs :mod:`ironlb.lab.probe` in the client namespace and collects what it streams. The
measurements are in :mod:`ironlb.lab.failover`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ironlb.lab.lan import Lan, new_secret
from ironlb.lab.netns import kill_group
from ironlb.lab.waits import WaitTimeout, wait_until

# The seed example, embedded so the demo works wherever ironlb is installed (same text as examples/).
SEED_CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 192.168.1.240-192.168.1.250
"""

SEED_SERVICE = """\
# The Service of the seed example, written as users write it (the apiserver fills in clusterIP).
apiVersion: v1
kind: Service
metadata:
  name: my-service
  namespace: default
spec:
  type: LoadBalancer
  selector:
    app: my-app
  ports:
  - name: http
    protocol: TCP
    port: 80
    targetPort: 8080
"""

SEED_CONFIG_FILE = "metallb-config.yaml"
SEED_SERVICE_FILE = "my-service.yaml"
SEED_SERVICE_KEY = "default/my-service"
VIP = "192.168.1.240"

# --------------------------------------------------------------------------------------------------- the cluster
class StandaloneCluster:
    """``ironlb run`` on every node of ``lan``, sharing ``workdir/state``; logs and status files in ``workdir``."""

    def __init__(
        self,
        lan: Lan,
        workdir: Path,
        *,
        ml_interval: float = 0.1,
        ml_dead_timeout: float = 0.35,
        log_level: str = "info",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.lan = lan
        self.workdir = workdir
        self.state = workdir / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.secret = new_secret(workdir)
        self.ml_interval = ml_interval
        self.ml_dead_timeout = ml_dead_timeout
        self.log_level = log_level
        self.extra_args = tuple(extra_args)
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self._logs: dict[str, IO[str]] = {}

    # ------------------------------------------------------------------ state directory
    def write_manifest(self, name: str, text: str) -> None:
        """Write a manifest atomically (readers never see half a file)."""
        tmp = self.state / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.state / name)

    def remove_manifest(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.state / name).unlink()

    def apply_seed(self) -> None:
        self.write_manifest(SEED_CONFIG_FILE, SEED_CONFIG)
        self.write_manifest(SEED_SERVICE_FILE, SEED_SERVICE)

    # ------------------------------------------------------------------ nodes
    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.lan.nodes]

    def command(self, node: str) -> list[str]:
        return [
            sys.executable, "-m", "ironlb", "run", "--state", str(self.state), "--node", node,
            "--members", self.lan.members_flag(), "--secret-file", str(self.secret),
            "--status-file", str(self.status_path(node)), "--log-level", self.log_level,
            "--ml-interval", str(self.ml_interval), "--ml-dead-timeout", str(self.ml_dead_timeout),
            *self.extra_args,
        ]  # fmt: skip

    def start(self, node: str) -> None:
        """Start ``ironlb run`` in the node's namespace (a stale status file from a previous life is removed)."""
        host = self.lan.node(node)
        self.status_path(node).unlink(missing_ok=True)
        old = self._logs.pop(node, None)
        if old is not None:
            old.close()
        log = open(self.log_path(node), "a")  # noqa: SIM115 - closed in close() or on restart
        self._logs[node] = log
        self.procs[node] = self.lan.lab.popen(host.netns, self.command(node), stdout=log, stderr=subprocess.STDOUT)

    def start_all(self) -> None:
        for node in self.node_names:
            self.start(node)

    def running(self, node: str) -> bool:
        proc = self.procs.get(node)
        return proc is not None and proc.poll() is None

    def kill(self, node: str) -> float:
        """The node dies as a machine does: its link goes down and its speaker is killed (-9), no goodbye.

        Returns the ``time.monotonic()`` just before the link went down.
        """
        t0 = time.monotonic()
        self.link(node, up=False)
        proc = self.procs[node]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        return t0

    def revive(self, node: str) -> None:
        """Bring a killed node back: link up, ``ironlb run`` started again."""
        self.link(node, up=True)
        self.start(node)

    def link(self, node: str, *, up: bool) -> None:
        self.lan.lab.run(self.lan.node(node).netns, ["ip", "link", "set", "eth0", "up" if up else "down"])

    def stop(self, node: str, timeout: float = 5.0) -> int | None:
        """A clean stop (SIGTERM: the node says goodbye and withdraws)."""
        proc = self.procs[node]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        return proc.poll()

    def close(self, timeout: float = 5.0) -> None:
        """Stop every node we started (by PID) and close the logs; the lab deletes the namespaces.

        All at once: SIGTERM to every node, ``timeout`` seconds for all of them to go, then SIGKILL for the rest
        and for what is left of their process groups (their fast processes). One node after the other, 50 nodes
        under load took minutes, long enough for an impatient caller to kill the benchmark half-way and leave
        the rest running.
        """
        running = [self.procs[node] for node in self.procs if self.running(node)]
        for proc in running:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=3)
            kill_group(proc)
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    # ------------------------------------------------------------------ status
    def status_path(self, node: str) -> Path:
        return self.workdir / f"{node}.status.json"

    def log_path(self, node: str) -> Path:
        return self.workdir / f"{node}.log"

    def log(self, node: str) -> str:
        try:
            return self.log_path(node).read_text()
        except OSError:
            return ""

    def status(self, node: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.status_path(node).read_text())
        except (OSError, ValueError):
            return None
        return data

    def announcers(self, ip: str = VIP) -> list[str]:
        """Running nodes whose status file says they announce ``ip`` (a killed node's file is stale)."""
        out = []
        for node in self.node_names:
            if not self.running(node):
                continue
            st = self.status(node)
            if st and not st.get("stopped") and ip in st.get("announcing", {}).get("layer2", []):
                out.append(node)
        return out

    def ingress(self, node: str, key: str = SEED_SERVICE_KEY) -> list[str]:
        st = self.status(node) or {}
        svc = st.get("services", {}).get(key) or {}
        return list(svc.get("ingress") or [])

    def wait_single_announcer(self, ip: str = VIP, timeout: float = 10.0, exclude: Sequence[str] = ()) -> str | None:
        """Wait until exactly one running node (not in ``exclude``) announces ``ip``; its name, or None."""

        def one() -> str | None:
            found = self.announcers(ip)
            return found[0] if len(found) == 1 and found[0] not in exclude else None

        try:
            return wait_until(one, timeout, f"one announcer of {ip}", interval=0.005)
        except WaitTimeout:
            return None

    def converged(self) -> bool:
        """Every running node sees every running node alive (a late starter can still take an IP over)."""
        running = sorted(n for n in self.node_names if self.running(n))
        return all((self.status(n) or {}).get("members", {}).get("alive") == running for n in running)

    def steady(self, ip: str = VIP, key: str = SEED_SERVICE_KEY) -> str | None:
        """The announcer of ``ip`` once the cluster is steady, else None.

        Steady: every running node sees exactly the running nodes alive (with quorum), all agree on which node
        announces ``key``, and that node alone announces ``ip``. A node that started late is otherwise briefly
        seen as dead by the others, and the IP moves to it once it is heard from.
        """
        running = sorted(n for n in self.node_names if self.running(n))
        elected = set()
        for node in running:
            st = self.status(node)
            if not st or st.get("members", {}).get("alive") != running or st["members"].get("quorum") is False:
                return None
            elected.add(((st.get("services", {}).get(key) or {}).get("layer2") or {}).get("node"))
        owners = self.announcers(ip)
        if len(owners) != 1 or elected != {owners[0]}:
            return None
        return owners[0]

    def wait_steady(self, ip: str = VIP, timeout: float = 15.0, key: str = SEED_SERVICE_KEY) -> str | None:
        try:
            return wait_until(lambda: self.steady(ip, key), timeout, f"a steady announcer of {ip}", interval=0.01)
        except WaitTimeout:
            return None

    def node_of_mac(self, mac: str) -> str | None:
        return next((n.name for n in self.lan.nodes if n.mac.lower() == mac.lower()), None)

    def log_time(self, node: str, pattern: str, after_wall: float) -> float | None:
        """Wall-clock time of the first log line of ``node`` matching ``pattern`` at or after ``after_wall``."""
        rx = re.compile(pattern)
        for line in self.log(node).splitlines():
            m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ", line)
            if not m or not rx.search(line):
                continue
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1000
            if t >= after_wall - 0.001:
                return t
        return None

    # ------------------------------------------------------------------ client side
    @property
    def client_ns(self) -> str:
        assert self.lan.client is not None
        return self.lan.client.netns

    def arping(self, ip: str = VIP, count: int = 2) -> list[tuple[str, str]]:
        """``arping`` from the client: (MAC, arping's own line) per reply."""
        cmd = ["arping", "-c", str(count), "-i", "eth0", ip]
        r = self.lan.lab.run(self.client_ns, cmd, check=False, timeout=count + 5)
        return parse_arping(r.stdout)

    def http_get(self, ip: str = VIP, port: int = 80, timeout: float = 2.0) -> dict[str, Any]:
        """One HTTP GET from the client: ``{"ok", "status", "body", "ms"}`` or ``{"ok": False, "err"}``."""
        cmd = [sys.executable, "-m", "ironlb.lab.probe", "get", ip, "--port", str(port), "--timeout", str(timeout)]
        r = self.lan.lab.run(self.client_ns, cmd, check=False, timeout=timeout + 10)
        try:
            data: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return {"ok": False, "err": (r.stderr or r.stdout).strip()}
        return data

    def probe(self, ip: str = VIP, port: int = 80, interval: float = 0.01, timeout: float = 0.2) -> ClientProbe:
        return ClientProbe(self, ip, port, interval, timeout)


ARPING_LINE = re.compile(r"^\d+ bytes from ([0-9a-fA-F:]{17}) \(.*$", re.MULTILINE)


def parse_arping(out: str) -> list[tuple[str, str]]:
    """Habets arping: ``42 bytes from 02:00:00:00:00:0b (192.168.1.240): index=0 time=712.345 usec``."""
    return [(m.group(1).lower(), m.group(0).strip()) for m in ARPING_LINE.finditer(out)]


class ProbeExited(Exception):
    """The probe program is gone: no event will come."""


class ClientProbe:
    """The client's view: an HTTP GET every ``interval`` (each on a new connection) plus ARP sniffing, streamed."""

    def __init__(self, cluster: StandaloneCluster, ip: str, port: int, interval: float, timeout: float) -> None:
        self.ip = ip
        cmd = [
            sys.executable, "-m", "ironlb.lab.probe", "probe", ip, "--port", str(port),
            "--interval", str(interval), "--timeout", str(timeout),
        ]  # fmt: skip
        self.proc = cluster.lan.lab.popen(
            cluster.client_ns, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(event)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any] | None:
        """The first event (already seen or to come) for which ``predicate`` holds; None in time or if the probe
        exited."""
        seen = 0

        def first() -> dict[str, Any] | None:
            nonlocal seen
            events = self.snapshot()
            found = next((e for e in events[seen:] if predicate(e)), None)
            seen = len(events)
            if found is None and self.proc.poll() is not None:
                raise ProbeExited(self.proc.returncode)
            return found

        try:
            return wait_until(first, timeout, "a probe event", interval=0.005)
        except (WaitTimeout, ProbeExited):
            return None

    def wait_ready(self, timeout: float = 10.0) -> bool:
        return self.wait(lambda e: e.get("ev") == "ready", timeout) is not None

    def wait_answer(self, node: str | None, after: float, timeout: float) -> dict[str, Any] | None:
        """The first HTTP answer (from ``node``, or any node) of an attempt finished after ``after``."""
        return self.wait(
            lambda e: e.get("ev") == "http" and e.get("ok") is True and e["t1"] > after
            and (node is None or e.get("body") == node),
            timeout,
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        self._reader.join(timeout=3)

    def __enter__(self) -> ClientProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
