"""A standalone ironlb cluster on a lab LAN: what ``ironlb demo``, ``bench/l2_failover.py`` and the tests share.

:class:`StandaloneCluster` starts one ``ironlb run`` per node namespace on a common state directory, kills nodes
the way a machine dies (link down and ``kill -9``), restarts them, and reads their status files.
:class:`ClientProbe` runs in the client namespace: it opens a TCP connection and sends an HTTP GET to the service IP
every few milliseconds, sniffs ARP for it, and streams what it sees as JSON lines with ``time.monotonic()``
timestamps (one clock for the whole machine, so they compare with the parent's). :func:`measure_failover` and
:func:`measure_announce` are the two measurements, shared by the demo and the benchmark.

The probe's side runs as ``python -m ironlb.lab.cluster probe|get|arp-wait ...`` inside the client namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ironlb.lab.lan import Lan, new_secret, wait_for

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


def pinned_service(name: str, ip: str, namespace: str = "default") -> str:
    """A LoadBalancer Service asking for ``ip`` (MetalLB's ``loadBalancerIPs`` annotation)."""
    return f"""\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
  annotations:
    metallb.io/loadBalancerIPs: {ip}
spec:
  type: LoadBalancer
  ports:
  - name: http
    protocol: TCP
    port: 80
"""


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

    def close(self) -> None:
        """Stop every node we started (by PID) and close the logs; the lab deletes the namespaces."""
        for node in list(self.procs):
            if self.running(node):
                self.stop(node, timeout=3)
            if self.running(node):
                self.procs[node].kill()
                self.procs[node].wait(timeout=3)
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
        found: list[str] = []

        def one() -> bool:
            found[:] = self.announcers(ip)
            return len(found) == 1 and found[0] not in exclude

        return found[0] if wait_for(one, timeout, interval=0.005) else None

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
        found: list[str] = []

        def check() -> bool:
            owner = self.steady(ip, key)
            found[:] = [owner] if owner else []
            return bool(found)

        return found[0] if wait_for(check, timeout, interval=0.01) else None

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
        cmd = [sys.executable, "-m", "ironlb.lab.cluster", "get", ip, "--port", str(port), "--timeout", str(timeout)]
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


class ClientProbe:
    """The client's view: an HTTP GET every ``interval`` (each on a new connection) plus ARP sniffing, streamed."""

    def __init__(self, cluster: StandaloneCluster, ip: str, port: int, interval: float, timeout: float) -> None:
        self.ip = ip
        cmd = [
            sys.executable, "-m", "ironlb.lab.cluster", "probe", ip, "--port", str(port),
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
        """The first event (already seen or to come) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            events = self.snapshot()
            for event in events[seen:]:
                if predicate(event):
                    return event
            seen = len(events)
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return None
            time.sleep(0.005)

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


# --------------------------------------------------------------------------------------------------- measurements
@dataclass
class FailoverResult:
    dead: str
    new: str | None = None
    total_ms: float | None = None  # kill -> the client's first HTTP answer from the new node
    detect_ms: float | None = None  # kill -> the new node logs the membership change (ms-resolution log clock)
    announce_ms: float | None = None  # kill -> the new node's status file announces the IP
    garp_ms: float | None = None  # kill -> the client sees an ARP packet from the new node's MAC for the IP
    failed: int = 0  # client attempts that failed meanwhile
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def measure_failover(
    cluster: StandaloneCluster, probe: ClientProbe, ip: str = VIP, timeout: float = 10.0
) -> FailoverResult:
    """Kill the node announcing ``ip`` (link down + kill -9) and time the client's move to the new announcer.

    The cluster must be in a steady state: one announcer, answering the probe.
    """
    dead = cluster.wait_steady(ip, timeout=5)
    if dead is None:
        return FailoverResult(dead="?", error=f"not steady: announcers of {ip}: {cluster.announcers(ip)}")
    result = FailoverResult(dead=dead)
    wall0 = time.time()
    t0 = cluster.kill(dead)
    # Poll the survivors' status files closely: that is when the new node decided to announce.
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        now_announcing = cluster.announcers(ip)
        if now_announcing:
            result.new = now_announcing[0]
            result.announce_ms = (time.monotonic() - t0) * 1000
            break
        time.sleep(0.002)
    if result.new is None:
        result.error = f"no node took over {ip} within {timeout} s"
        return result
    answer = probe.wait_answer(result.new, t0, timeout=max(0.5, deadline - time.monotonic()))
    if answer is None:
        result.error = f"the client got no HTTP answer from {result.new} within {timeout} s"
        return result
    result.total_ms = (answer["t1"] - t0) * 1000
    new_mac = cluster.lan.node(result.new).mac.lower()
    events = probe.snapshot()
    garp = next((e for e in events if e.get("ev") == "arp" and e["t"] > t0 and e.get("mac") == new_mac), None)
    if garp is not None:
        result.garp_ms = (garp["t"] - t0) * 1000
    result.failed = sum(1 for e in events if e.get("ev") == "http" and not e.get("ok") and t0 < e["t1"] <= answer["t1"])
    detected = cluster.log_time(result.new, r"members alive: ", wall0)
    if detected is not None:
        result.detect_ms = (detected - wall0) * 1000
    return result


def restore(cluster: StandaloneCluster, node: str, probe: ClientProbe, ip: str = VIP, timeout: float = 10.0) -> bool:
    """Revive ``node`` and wait for the steady state: it announces ``ip`` again and the client reaches it."""
    cluster.revive(node)
    if cluster.wait_steady(ip, timeout) != node:
        return False
    return probe.wait_answer(node, time.monotonic(), timeout) is not None


@dataclass
class AnnounceResult:
    ip: str
    node: str | None = None
    arp_ms: float | None = None  # Service file written -> the client gets an ARP reply
    error: str | None = None


def measure_announce(
    cluster: StandaloneCluster, name: str, ip: str, timeout: float = 5.0, interval: float = 0.002
) -> AnnounceResult:
    """Add a Service asking for ``ip`` to the state directory; time until an ARP request from the client is answered.

    The client sends a raw ARP request every ``interval`` from before the file is written, so the figure is the
    time to the first reply, to within ``interval``.
    """
    cmd = [sys.executable, "-m", "ironlb.lab.cluster", "arp-wait", ip, "--interval", str(interval),
           "--timeout", str(timeout)]  # fmt: skip
    proc = cluster.lan.lab.popen(cluster.client_ns, cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    result = AnnounceResult(ip)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        if '"ready"' not in ready:
            result.error = f"arp probe did not start: {ready!r}"
            return result
        t0 = time.monotonic()
        cluster.write_manifest(f"{name}.yaml", pinned_service(name, ip))
        line = proc.stdout.readline()
        proc.wait(timeout=timeout + 5)
        try:
            event = json.loads(line)
        except ValueError:
            result.error = f"arp probe: {line!r}"
            return result
        if event.get("ev") != "arp":
            result.error = f"no ARP answer for {ip} within {timeout} s"
            return result
        result.arp_ms = (event["t"] - t0) * 1000
        result.node = cluster.node_of_mac(event["mac"])
        return result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=3)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


# --------------------------------------------------------------------------------------------------- probe side
# Runs in the client namespace; stdlib only, so it starts fast.
ETH_P_ARP = 0x0806
ETH_P_ALL = 0x0003


def _mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _arp_socket(iface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind((iface, ETH_P_ARP))
    sock.setblocking(False)
    return sock


def _parse_arp(frame: bytes) -> tuple[int, str, str, str] | None:
    """(op, sender MAC, sender IP, target IP) of an Ethernet ARP frame."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    return op, _mac_str(frame[22:28]), socket.inet_ntoa(frame[28:32]), socket.inet_ntoa(frame[38:42])


def _iface_info(iface: str) -> tuple[bytes, bytes]:
    mac = bytes.fromhex(Path(f"/sys/class/net/{iface}/address").read_text().strip().replace(":", ""))
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface.encode()[:15]))  # SIOCGIFADDR
    return mac, packed[20:24]


def _arp_request(src_mac: bytes, src_ip: bytes, target: str) -> bytes:
    return (
        b"\xff" * 6 + src_mac + b"\x08\x06"
        + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src_mac + src_ip + b"\x00" * 6 + socket.inet_aton(target)
    )  # fmt: skip


async def _http_attempt(ip: str, port: int, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    event: dict[str, Any] = {"ev": "http", "t0": t0}
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            writer.write(f"GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
            data = await reader.read()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        event.update(ok=status == 200, status=status, body=body.decode(errors="replace"))
    except TimeoutError:
        event.update(ok=False, err="timeout")
    except OSError as exc:
        event.update(ok=False, err=exc.strerror or type(exc).__name__)
    finally:
        if writer is not None:
            writer.close()
    event["t1"] = time.monotonic()
    return event


async def _probe(ip: str, port: int, interval: float, timeout: float, iface: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)
    sock = _arp_socket(iface)

    def on_arp() -> None:
        while True:
            try:
                frame = sock.recv(2048)
            except BlockingIOError:
                return
            parsed = _parse_arp(frame)
            if parsed and parsed[2] == ip:
                _emit({"ev": "arp", "t": time.monotonic(), "op": parsed[0], "mac": parsed[1]})

    loop.add_reader(sock.fileno(), on_arp)
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        _emit(await _http_attempt(ip, port, timeout))

    _emit({"ev": "ready", "t": time.monotonic()})
    next_at = time.monotonic()
    while not stop.is_set():
        task = loop.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
    for task in list(tasks):
        task.cancel()
    sock.close()


def _arp_wait(ip: str, interval: float, timeout: float, iface: str) -> int:
    """Send an ARP request for ``ip`` every ``interval`` until a reply comes; print it."""
    import select

    src_mac, src_ip = _iface_info(iface)
    sock = _arp_socket(iface)
    request = _arp_request(src_mac, src_ip, ip)
    _emit({"ev": "ready", "t": time.monotonic()})
    deadline = time.monotonic() + timeout
    next_send = time.monotonic()
    while (now := time.monotonic()) < deadline:
        if now >= next_send:
            sock.send(request)
            next_send = now + interval
        readable, _, _ = select.select([sock], [], [], max(0.0, min(next_send, deadline) - time.monotonic()))
        if not readable:
            continue
        while True:
            try:
                frame = sock.recv(2048)
            except BlockingIOError:
                break
            parsed = _parse_arp(frame)
            if parsed and parsed[0] == 2 and parsed[2] == ip:
                _emit({"ev": "arp", "t": time.monotonic(), "mac": parsed[1]})
                return 0
    _emit({"ev": "timeout", "t": time.monotonic()})
    return 1


def probe_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ironlb.lab.cluster", description="client-side lab probes")
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("probe", help="HTTP GET every INTERVAL and ARP sniffing, as JSON lines, until stdin closes")
    p.add_argument("ip")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--timeout", type=float, default=0.2)
    p.add_argument("--iface", default="eth0")
    p = sub.add_parser("get", help="one HTTP GET, as a JSON line")
    p.add_argument("ip")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--timeout", type=float, default=2.0)
    p = sub.add_parser("arp-wait", help="ARP requests every INTERVAL until a reply, as JSON lines")
    p.add_argument("ip")
    p.add_argument("--interval", type=float, default=0.002)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--iface", default="eth0")
    args = parser.parse_args(argv)
    if args.mode == "probe":
        asyncio.run(_probe(args.ip, args.port, args.interval, args.timeout, args.iface))
        return 0
    if args.mode == "get":
        event = asyncio.run(_http_attempt(args.ip, args.port, args.timeout))
        event["ms"] = round((event["t1"] - event["t0"]) * 1000, 2)
        _emit(event)
        return 0 if event["ok"] else 1
    return _arp_wait(args.ip, args.interval, args.timeout, args.iface)


@contextlib.contextmanager
def ignoring_signals(*signums: int) -> Iterator[None]:
    """Ignore ``signums`` inside the block: a second Ctrl-C must not interrupt a cleanup half-way."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    sys.exit(probe_main())
