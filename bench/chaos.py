"""Chaos benchmark: does the fast path hold while a node is loaded or attacked?

Three nodes of ``ironlb run`` and a client on a LAN in network namespaces (``ironlb.lab``, as ``bench/l2_failover``).
For each load, run for ``--duration`` seconds (30 by default):

- ``baseline``: nothing, for reference;
- ``bgp``: a BGP peer (on a host of its own on the LAN, the "attacker") sends every node a full table, over and over, as fast as the node decodes it
  (``--bgp-updates`` UPDATEs of 800 IPv4 /32s each; 1250 is one million prefixes);
- ``manifest``: a manifest of ``--manifest-mb`` MB (ClusterIP Services) rewritten in the state directory every 2 s
  (the nodes run with ``--max-file-size 64Mi``, and the YAML text limit follows it: 20 MB is parsed, 45,000
  Services, and takes longer than 2 s, so the nodes parse without pause);
- ``junk``: ``--junk-rate`` junk datagrams per second to the membership port of the three nodes, from the
  attacker host (60 % right size and magic with a wrong MAC, 30 % too short, 10 % too long); only to the lab's own
  addresses, bounded in time and count; ``--flooders`` processes share the rate, each sending batches with
  ``sendmmsg``; the nodes' rejected counts by reason and the kernel's input backlog drops are reported;
- ``webhook``: the controller's webhook server (a process of its own, plain HTTP) on node1's host, sent
  AdmissionReviews of 2.9 MB (just under the 3 MiB cap, so each is decoded and validated) from the attacker, 4 at
  a time, 100 per round, for the whole run; the webhook's latencies and its loop lateness go in the notes;
- ``all``: the four at once.

Measured during the load, before any kill:

- **false failovers**: ``MemberDown`` lines in the node logs and changes of the VIP's announcer (must be 0);
- **heartbeat inter-arrival**: a sniffer in every node's namespace (classic BPF: UDP to 7946 from a member) records
  when each member's datagrams arrive (the kernel's time stamps); p99 / max of the gaps, per receiver and sender
  (heartbeat every 100 ms);
- **ARP answer latency**: the client sends an ARP request for the VIP every 10 ms; request -> reply time (p50, p99,
  max) between the kernel's stamps of the request leaving and the reply arriving at the client's interface (the
  node's answer time, without the client's own scheduling), the same on the client's clock, and requests without
  a reply within 1 s;
- **machine stalls**: a process at a real-time priority above the nodes' fast processes sleeps 10 ms again and
  again; wakeups late by more than 20 ms are stalls of the whole machine, which no scheduling of ironlb avoids.

Then, with the load still running, ``--failovers`` times: kill the VIP's announcer (link down, kill -9) and time
the client's first HTTP answer from the new node (``ironlb.lab.failover``), and count MemberDown lines about any
node but the killed one (false failovers).

Root only. Run from the repository root: ``python -m bench.chaos [--loads baseline,bgp,manifest,junk,all]``.
``--fastpath thread`` runs the nodes with their fast path on a thread instead of a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MEMBERSHIP_PORT = 7946
PEER_ASN, NODE_ASN = 64512, 64513
PREFIXES_PER_UPDATE = 800
TARGETS = {"heartbeat gap p99": 150.0, "arp p99": 20.0, "failover p95": 1000.0}


# =============================================================================================== helpers in namespaces
def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _bpf(program: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(struct.pack("HBBI", *insn) for insn in program)


def _attach(sock: socket.socket, program: bytes) -> None:
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HP", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, 26, fprog)  # SO_ATTACH_FILTER


def membership_filter(members: Sequence[str]) -> bytes:
    """Accept unfragmented IPv4 UDP from one of ``members`` to the membership port; drop everything else."""
    ips = [int(IPv4Address(m)) for m in members]
    n = len(ips)
    port_at = 7 + n  # index of "ldh [36]"
    accept, drop = port_at + 2, port_at + 3
    prog: list[tuple[int, int, int, int]] = [
        (0x28, 0, 0, 12),  # 0 ldh [12] ethertype
        (0x15, 0, drop - 2, 0x0800),  # 1 IPv4?
        (0x30, 0, 0, 23),  # 2 ldb [23] protocol
        (0x15, 0, drop - 4, 17),  # 3 UDP?
        (0x28, 0, 0, 20),  # 4 ldh [20] flags + fragment offset
        (0x45, drop - 6, 0, 0x1FFF),  # 5 jset: a later fragment -> drop
        (0x20, 0, 0, 26),  # 6 ld [26] source address
    ]
    for i, ip in enumerate(ips):
        at = 7 + i
        prog.append((0x15, port_at - at - 1, (drop - at - 1) if i == n - 1 else 0, ip))
    prog += [
        (0x28, 0, 0, 36),  # ldh [36] UDP destination port (IHL 5)
        (0x15, 0, 1, MEMBERSHIP_PORT),
        (0x06, 0, 0, 0x40000),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    assert len(prog) == accept + 2 and prog[accept][0] == 0x06
    return _bpf(prog)


SO_TIMESTAMPNS = 35  # also the cmsg type (SCM_TIMESTAMPNS)
PACKET_OUTGOING = 4


def _stamped(sock: socket.socket) -> None:
    """Ask the kernel to stamp every frame when it passes the interface (send or receive)."""
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def _recv_stamped(sock: socket.socket, size: int = 2048) -> tuple[bytes, Any, float | None]:
    """One frame, its address and the kernel's time stamp (CLOCK_REALTIME seconds), read without blocking."""
    frame, ancdata, _flags, addr = sock.recvmsg(size, socket.CMSG_SPACE(16))
    stamp = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            stamp = sec + nsec / 1e9
    return frame, addr, stamp


def sniff_main(args: argparse.Namespace) -> int:
    """Record when each member's membership datagrams arrive on ``--iface``; print the gaps as JSON at the end."""
    members = args.members.split(",")
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    _attach(sock, membership_filter(members))
    sock.bind((args.iface, 0x0003))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    _stamped(sock)  # arrival times from the kernel: this sniffer's own scheduling is left out
    sock.settimeout(0.2)
    last: dict[str, float] = {}
    gaps: dict[str, list[float]] = {}
    arrivals: dict[str, list[float]] = {}  # wall-clock kernel stamps, to tell what a false MemberDown had
    _emit({"ev": "ready"})
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        try:
            frame, _addr, stamp = _recv_stamped(sock)
        except TimeoutError:
            continue
        now = stamp if stamp is not None else time.time()
        src = socket.inet_ntoa(frame[26:30])
        if src in last:
            gaps.setdefault(src, []).append((now - last[src]) * 1000)
        last[src] = now
        arrivals.setdefault(src, []).append(round(now, 4))
    _emit({"ev": "gaps", "gaps": gaps, "arrivals": arrivals})
    return 0


def _iface_info(iface: str) -> tuple[bytes, bytes]:
    import fcntl

    mac = bytes.fromhex(Path(f"/sys/class/net/{iface}/address").read_text().strip().replace(":", ""))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface.encode()[:15]))  # SIOCGIFADDR
    return mac, packed[20:24]


def arp_filter() -> bytes:
    """ARP frames only (the socket listens to every protocol so that it sees its own requests go out)."""
    return _bpf([(0x28, 0, 0, 12), (0x15, 0, 1, 0x0806), (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0)])


def arpping_main(args: argparse.Namespace) -> int:
    """ARP request for ``ip`` every ``--interval``; print request -> reply times (ms) and the unanswered count.

    Two clocks: ``rtts`` from the kernel's stamps of the request leaving and the reply arriving at the client's
    interface (what the node took: the client's own scheduling is left out), ``user_rtts`` from this process's
    clock around ``send`` and after ``select`` (what a busy client sees, its own delays included).
    """
    import select

    src_mac, src_ip = _iface_info(args.iface)
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: it receives nothing
    sender.bind((args.iface, 0))
    # A packet socket never sees the frames it sends itself: a second one sees both directions.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    _attach(sock, arp_filter())
    sock.bind((args.iface, 0x0003))
    _stamped(sock)
    sock.setblocking(False)
    target = socket.inet_aton(args.ip)
    request = (
        b"\xff" * 6 + src_mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
        + src_mac + src_ip + b"\x00" * 6 + target
    )  # fmt: skip
    pending: list[float] = []  # user clock of requests sent, not answered
    sent_stamps: list[float] = []  # kernel stamps of our requests on the wire, not answered
    rtts: list[float] = []
    user_rtts: list[float] = []
    lost = 0
    _emit({"ev": "ready"})
    end = time.monotonic() + args.duration
    next_send = time.monotonic()
    while (now := time.monotonic()) < end:
        if now >= next_send:
            sender.send(request)
            pending.append(now)
            next_send += args.interval
        while pending and now - pending[0] > 1.0:
            pending.pop(0)
            if sent_stamps:
                sent_stamps.pop(0)
            lost += 1
        readable, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
        if not readable:
            continue
        while True:
            try:
                frame, addr, stamp = _recv_stamped(sock)
            except BlockingIOError:
                break
            got = time.monotonic()
            if len(frame) < 42 or frame[12:14] != b"\x08\x06":
                continue
            if addr[2] == PACKET_OUTGOING:
                if frame[20:22] == b"\x00\x01" and frame[38:42] == target and stamp is not None:
                    sent_stamps.append(stamp)
                continue
            if frame[20:22] == b"\x00\x02" and frame[28:32] == target and pending:
                user_rtts.append((got - pending.pop(0)) * 1000)
                if sent_stamps and stamp is not None:
                    rtts.append((stamp - sent_stamps.pop(0)) * 1000)
    lost += len(pending)
    _emit({"ev": "arp", "rtts": rtts, "user_rtts": user_rtts, "lost": lost})
    return 0


def stallprobe_main(args: argparse.Namespace) -> int:
    """Sleep 10 ms again and again at a real-time priority above the nodes' fast processes; print the late wakeups.

    A wakeup late by tens of ms here is a stall of the whole machine (or of the kernel), which no scheduling of
    the nodes' fast processes can avoid: it tells such stalls apart from ironlb's own.
    """
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
    late: list[tuple[float, float]] = []  # (wall clock, ms late)
    wakeups = 0
    _emit({"ev": "ready"})
    end = time.monotonic() + args.duration
    while (start := time.monotonic()) < end:
        time.sleep(0.01)
        wakeups += 1
        over = (time.monotonic() - start - 0.01) * 1000
        if over > args.threshold:
            late.append((round(time.time(), 3), round(over, 1)))
    _emit({"ev": "stalls", "wakeups": wakeups, "late": late})
    return 0


class _SockaddrIn(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16), ("addr", ctypes.c_uint8 * 4),
                ("zero", ctypes.c_uint8 * 8)]  # fmt: skip


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(_Iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]  # fmt: skip


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


class MmsgSender:
    """``sendmmsg(2)`` through ctypes over a fixed ring of (datagram, IPv4 target): one system call sends up to
    ``batch`` datagrams, which a ``sendto`` per datagram from Python cannot match (5,700-22,000/s measured)."""

    def __init__(self, sock: socket.socket, ring: Sequence[tuple[bytes, tuple[str, int]]], batch: int) -> None:
        self._fd = sock.fileno()
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self._libc.sendmmsg.restype = ctypes.c_int
        n = len(ring)
        # Twice the ring, so that a batch starting anywhere in the first half is one contiguous slice.
        self._msgs = (_Mmsghdr * (2 * n))()
        self._addrs = (_SockaddrIn * (2 * n))()
        self._iovs = (_Iovec * (2 * n))()
        self._bufs = [ctypes.create_string_buffer(data, len(data)) for data, _ in ring]
        for i in range(2 * n):
            data, (host, port) = ring[i % n]
            a = self._addrs[i]
            a.family = socket.AF_INET
            a.port = socket.htons(port)
            a.addr[:] = list(socket.inet_aton(host))
            self._iovs[i].base = ctypes.addressof(self._bufs[i % n])
            self._iovs[i].len = len(data)
            h = self._msgs[i].hdr
            h.name = ctypes.addressof(a)
            h.namelen = ctypes.sizeof(_SockaddrIn)
            h.iov = ctypes.pointer(self._iovs[i])
            h.iovlen = 1
        self._n = n
        self._batch = max(1, min(batch, n))
        self._at = 0

    def send(self, count: int) -> int:
        """Send up to ``count`` datagrams (at most one batch); the number the kernel took (0 on an error)."""
        count = min(count, self._batch)
        base = ctypes.addressof(self._msgs) + self._at * ctypes.sizeof(_Mmsghdr)
        sent = self._libc.sendmmsg(self._fd, base, count, 0)
        if sent <= 0:
            self._at = (self._at + 1) % self._n  # never stuck on one datagram the kernel refuses
            return 0
        self._at = (self._at + sent) % self._n
        return int(sent)


def flood_main(args: argparse.Namespace) -> int:
    """Junk to the membership port of ``--targets`` at ``--rate`` datagrams/s for ``--duration`` s (bounded in
    time and in count: never ahead of the rate), sent in batches with ``sendmmsg``."""
    targets = [(t, MEMBERSHIP_PORT) for t in args.targets.split(",")]
    rng = random.Random(1 + args.seed)
    kinds = [b"IL\x01\x01" + rng.randbytes(116) for _ in range(64)]  # right size and magic, wrong MAC
    short = [rng.randbytes(rng.randint(1, 20)) for _ in range(16)]
    long_ = [rng.randbytes(8300) for _ in range(4)]
    mix = kinds * 6 + short * 12 + long_ * 16  # ~ 60 / 30 / 10 %
    rng.shuffle(mix)
    ring = [(mix[i % len(mix)], targets[i % len(targets)]) for i in range(len(mix) * len(targets))]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sender = MmsgSender(sock, ring, batch=256)
    limit = int(args.rate * args.duration)
    sent = 0
    start = time.monotonic()
    end = start + args.duration
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    _emit({"ev": "ready"})
    while (now := time.monotonic()) < end and not stopped.is_set() and sent < limit:
        due = min(int((now - start) * args.rate), limit)
        if due > sent:  # behind schedule: send flat out, never more than the rate
            took = sender.send(due - sent)
            sent += took
            if took:
                continue
        time.sleep(0.001)
    _emit({"ev": "flood", "sent": sent, "seconds": time.monotonic() - start})
    return 0


def full_table(messages: int, next_hop: str) -> bytes:
    from ironlb.bgp.wire import UpdateMessage, encode_update

    out = bytearray()
    hop = IPv4Address(next_hop)
    for m in range(messages):
        base = (20 << 24) + m * PREFIXES_PER_UPDATE
        nlri = tuple(IPv4Network((base + i, 32)) for i in range(PREFIXES_PER_UPDATE))
        out += encode_update(
            UpdateMessage(nlri=nlri, origin=0, as_path=((2, (PEER_ASN,)),), next_hop=hop), four_octet_as=True
        )
    return bytes(out)


def bgppeer_main(args: argparse.Namespace) -> int:
    """A passive BGP peer on ``--address``:179 that sends each node the full table over and over."""
    return asyncio.run(_bgppeer(args))


async def _bgppeer(args: argparse.Namespace) -> int:
    from ironlb.bgp.config import PeerConfig
    from ironlb.bgp.fsm import BGPStateMachine

    table = full_table(args.updates, args.address)
    sent: dict[str, int] = {}
    end = time.monotonic() + args.duration

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_ip = writer.get_extra_info("peername")[0]
        loop = asyncio.get_running_loop()
        fsm = BGPStateMachine(
            PeerConfig(
                my_asn=PEER_ASN, peer_asn=NODE_ASN, peer_address=IPv4Address(peer_ip),
                router_id=IPv4Address(args.address), hold_time=90,
            )
        )  # fmt: skip
        fsm.connection_made(IPv4Address(args.address), IPv4Address(peer_ip), loop.time())
        writer.write(fsm.data_to_send())

        async def pump() -> None:
            while time.monotonic() < end:
                writer.write(table)
                await writer.drain()
                sent[peer_ip] = sent.get(peer_ip, 0) + args.updates

        pumping: asyncio.Task[None] | None = None
        try:
            while time.monotonic() < end:
                try:
                    data = await asyncio.wait_for(reader.read(65536), 1.0)
                except TimeoutError:
                    data = b""
                else:
                    if not data:
                        break
                    fsm.data_received(data, loop.time())
                fsm.timer(loop.time())
                out = fsm.data_to_send()
                if out:
                    writer.write(out)
                if fsm.is_established and pumping is None:
                    pumping = asyncio.create_task(pump())
        finally:
            if pumping is not None:
                pumping.cancel()
            writer.close()

    server = await asyncio.start_server(handle, args.address, 179)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    _emit({"ev": "ready", "bytes": len(table)})
    async with server:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), max(0.0, end - time.monotonic()))
    _emit({"ev": "bgp", "updates_sent": sent})
    return 0


# ======================================================================================================= orchestrator
ATTACKER_IP = "192.168.1.200"
BGP_PEER_FILE = "chaos-bgppeer.yaml"
MANIFEST_FILE = "chaos-manifest.yaml"
MEMBER_DOWN = re.compile(r"MemberDown\(name='([^']+)'")


def bgp_peer_manifest(address: str) -> str:
    return f"""\
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: chaos-peer
  namespace: metallb-system
spec:
  myASN: {NODE_ASN}
  peerASN: {PEER_ASN}
  peerAddress: {address}
  holdTime: 90s
"""


def big_manifest(megabytes: float) -> str:
    """ClusterIP Services (ignored by the allocator, but parsed and validated) adding up to ``megabytes``."""
    one = """\
---
apiVersion: v1
kind: Service
metadata:
  name: chaos-{i}
  namespace: chaos
  labels: {{app: chaos-{i}, tier: backend, team: platform}}
  annotations: {{note: "filler service {i} for the chaos benchmark, parsed on every change"}}
spec:
  type: ClusterIP
  clusterIP: 10.{a}.{b}.{c}
  ports:
  - {{name: http, protocol: TCP, port: 80, targetPort: 8080}}
  - {{name: https, protocol: TCP, port: 443, targetPort: 8443}}
"""
    parts: list[str] = []
    size, i = 0, 0
    while size < megabytes * 1_000_000:
        text = one.format(i=i, a=(i >> 16) & 255, b=(i >> 8) & 255, c=i & 255)
        parts.append(text)
        size += len(text)
        i += 1
    return "".join(parts)


def _first_line(fd: int) -> str:
    """The first line from ``fd``, read a byte at a time so that nothing after it is left in a buffer that
    ``communicate(timeout=...)`` (which reads the descriptor itself) would never see."""
    data = bytearray()
    while not data.endswith(b"\n") and len(data) < 65536:
        byte = os.read(fd, 1)
        if not byte:
            break
        data += byte
    return data.decode(errors="replace")


class Cmd:
    """A helper of this module started in a namespace, read as JSON lines."""

    def __init__(self, lab: Any, ns: str, argv: Sequence[str]) -> None:
        self.proc = lab.popen(
            ns, [sys.executable, "-m", "bench.chaos", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
        )
        assert self.proc.stdout is not None
        line = _first_line(self.proc.stdout.fileno())
        if '"ready"' not in line:
            raise RuntimeError(f"{argv[0]} did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}")

    def result(self, timeout: float) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=timeout)
        for line in reversed(out.splitlines()):
            with contextlib.suppress(ValueError):
                data: dict[str, Any] = json.loads(line)
                return data
        raise RuntimeError(f"no result: {err[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _stats(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values)}


WEBHOOK_PORT = 9443
WEBHOOK_BODY = 2_900_000
"""Bytes of each AdmissionReview of the webhook load: just under the 3 MiB body cap, so each is validated."""


def webhook_server_main(args: argparse.Namespace) -> int:
    """The controller's webhook server (plain HTTP) on ``--address``; prints its loop lateness at exit."""
    return asyncio.run(_webhook_server(args))


async def _webhook_server(args: argparse.Namespace) -> int:
    from ironlb.webhooks.server import WebhookServer

    async def no_objects(kind: str, namespace: str) -> list[dict[str, Any]]:
        return []

    server = WebhookServer(no_objects, host=args.address, port=WEBHOOK_PORT)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    lateness: list[float] = []
    _emit({"ev": "ready"})
    while not stop.is_set():
        due = loop.time() + 0.01
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.01)
        lateness.append(max(0.0, loop.time() - due) * 1000)
    await server.close()
    _emit({"ev": "webhook_server", "lateness_ms": _stats(lateness)})
    return 0


def webhook_client_main(args: argparse.Namespace) -> int:
    """AdmissionReviews of :data:`WEBHOOK_BODY` bytes to ``--address``, ``--concurrency`` at once, rounds of
    ``--requests`` until ``--duration`` is over; the latencies and statuses."""
    return asyncio.run(_webhook_client(args))


async def _webhook_client(args: argparse.Namespace) -> int:
    from bench.webhook import POOLS, review

    body = review(WEBHOOK_BODY)
    head = f"POST {POOLS} HTTP/1.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + args.duration
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def one() -> None:
        started = loop.time()
        try:
            reader, writer = await asyncio.open_connection(args.address, WEBHOOK_PORT)
            writer.write(head + body)
            await writer.drain()
            status = (await reader.readuntil(b"\r\n")).split()[1].decode()
            await reader.read()
            writer.close()
        except (OSError, asyncio.IncompleteReadError, IndexError) as err:
            status = type(err).__name__
        statuses[status] = statuses.get(status, 0) + 1
        latencies.append((loop.time() - started) * 1000)

    async def worker() -> None:
        while loop.time() < end and not stop.is_set():
            for _ in range(max(1, args.requests // args.concurrency)):
                if loop.time() >= end or stop.is_set():
                    return
                await one()

    _emit({"ev": "ready"})
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    _emit({"ev": "webhook", "requests": len(latencies), "statuses": statuses, "latency_ms": _stats(latencies)})
    return 0


@contextlib.contextmanager
def load(name: str, cluster: Any, args: argparse.Namespace, notes: dict[str, Any]) -> Iterator[None]:
    """Start the load(s) of ``name``; stop them on exit."""
    lab, lan = cluster.lan.lab, cluster.lan
    attacker = args.attacker_ns
    nodes_ips = ",".join(n.ip for n in lan.nodes[: args.junk_nodes])
    helpers: list[Cmd] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    parts = {"bgp", "manifest", "junk", "webhook"} if name == "all" else {name} - {"baseline"}
    span = args.duration + args.failovers * 12 + 30
    try:
        if "bgp" in parts:
            peer = Cmd(lab, attacker, ["_bgppeer", "--address", ATTACKER_IP, "--updates", str(args.bgp_updates),
                                       "--duration", str(span)])  # fmt: skip
            helpers.append(peer)
            cluster.write_manifest(BGP_PEER_FILE, bgp_peer_manifest(ATTACKER_IP))
            notes["bgp_prefixes"] = args.bgp_updates * PREFIXES_PER_UPDATE
        if "manifest" in parts:
            text = big_manifest(args.manifest_mb)
            notes["manifest_bytes"] = len(text)

            def rewrite() -> None:
                n = 0
                while not stop.is_set():
                    cluster.write_manifest(MANIFEST_FILE, f"# rewrite {n}\n" + text)
                    n += 1
                    stop.wait(2.0)

            threads.append(threading.Thread(target=rewrite, daemon=True))
        if "junk" in parts:
            # Several senders: on a shared machine one process's share of a core is what limits the rate.
            for i in range(args.flooders):
                helpers.append(Cmd(lab, attacker, ["_flood", "--targets", nodes_ips, "--rate",
                                                   str(args.junk_rate // args.flooders), "--duration", str(span),
                                                   "--seed", str(i)]))  # fmt: skip
        if "webhook" in parts:
            # The controller's webhook server on node1's host (where its pod would run), fed from the attacker.
            host = lan.nodes[0]
            helpers.append(Cmd(lab, host.netns, ["_webhook_server", "--address", host.ip]))
            helpers.append(Cmd(lab, attacker, ["_webhook_client", "--address", host.ip, "--requests", "100",
                                               "--concurrency", "4", "--duration", str(span)]))  # fmt: skip
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        for h in reversed(helpers):  # the webhook client before its server
            h.stop()
            with contextlib.suppress(Exception):
                out = h.proc.stdout.read() if h.proc.stdout else ""
                for line in out.splitlines():
                    event = json.loads(line)
                    if event.get("ev") == "flood":
                        notes["junk_sent"] = notes.get("junk_sent", 0) + event["sent"]
                        rate = event["sent"] / max(event["seconds"], 1e-9)
                        notes["junk_rate"] = round(notes.get("junk_rate", 0) + rate)
                    if event.get("ev") == "bgp":
                        notes["bgp_updates_sent"] = event["updates_sent"]
                    if event.get("ev") == "webhook":
                        notes["webhook_requests"] = event["requests"]
                        notes["webhook_statuses"] = event["statuses"]
                        notes["webhook_latency_ms"] = event["latency_ms"]
                    if event.get("ev") == "webhook_server":
                        notes["webhook_loop_lateness_ms"] = event["lateness_ms"]
        cluster.remove_manifest(BGP_PEER_FILE)
        cluster.remove_manifest(MANIFEST_FILE)


def add_attacker(lan: Any) -> str:
    """One more host on the LAN's switch, for the BGP peer and the junk: the client's own link stays quiet."""
    lab = lan.lab
    ns = lab.netns("atk")
    lab.veth(ns, "eth0", lan.switch, "p200", mac_a="02:00:00:00:00:c8")
    lab.run(lan.switch, ["ip", "link", "set", "p200", "master", "br0"])
    lab.run(lan.switch, ["ip", "link", "set", "p200", "up"])
    lab.addr(ns, "eth0", f"{ATTACKER_IP}/24")
    return str(ns)


STALLS_KEY = "(local stalls)"
WHEN_KEY = "(fetched at)"


def rejected_counts(cluster: Any) -> dict[str, dict[str, float]]:
    """Every node's ``ironlb_membership_rejected_datagrams_total`` by reason (empty for a node that did not answer),
    and its ``ironlb_membership_stalls_total`` (late ticks forgiven as its own stalls) under :data:`STALLS_KEY`."""
    fetch = ("import urllib.request; "
             "print(urllib.request.urlopen('http://127.0.0.1:9120/metrics', timeout=5).read().decode())")  # fmt: skip
    out: dict[str, dict[str, float]] = {}
    for host in cluster.lan.nodes:
        counts: dict[str, float] = {}
        r = cluster.lan.lab.run(host.netns, [sys.executable, "-c", fetch], check=False, timeout=30)
        for m in re.finditer(r'^ironlb_membership_rejected_datagrams_total\{reason="([a-z_]+)"\} (\S+)$', r.stdout,
                             re.M):  # fmt: skip
            counts[m.group(1)] = float(m.group(2))
        counts[WHEN_KEY] = time.monotonic()
        stalls = re.search(r"^ironlb_membership_stalls_total (\S+)$", r.stdout, re.M)
        if stalls:
            counts[STALLS_KEY] = float(stalls.group(1))
        out[host.name] = counts
    return out


def socket_drops(cluster: Any) -> dict[str, int]:
    """Per node: UDP datagrams its kernel dropped because a socket's receive buffer was full (``RcvbufErrors`` of
    the node's namespace): a flood arriving faster than the node drains it."""
    out: dict[str, int] = {}
    for host in cluster.lan.nodes:
        r = cluster.lan.lab.run(host.netns, ["cat", "/proc/net/snmp"], check=False, timeout=10)
        rows = [line.split() for line in r.stdout.splitlines() if line.startswith("Udp:")]
        if len(rows) >= 2 and "RcvbufErrors" in rows[0]:
            out[host.name] = int(rows[1][rows[0].index("RcvbufErrors")])
    return out


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                out += [int(child), *_descendants(int(child))]
    return out


def fast_cpu(cluster: Any) -> dict[str, float]:
    """CPU seconds (user + system) each node's fast process has used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for node, proc in cluster.procs.items():
        for pid in _descendants(proc.pid):
            with contextlib.suppress(OSError):
                if b"ironlb.fastproc.child" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    out[node] = (int(fields[11]) + int(fields[12])) / tick
    return out


def backlog_drops() -> int:
    """Packets the kernel dropped from its per-CPU input backlogs (machine-wide: /proc/net/softnet_stat, column 2)."""
    lines = Path("/proc/net/softnet_stat").read_text().split("\n")
    return sum(int(line.split()[1], 16) for line in lines if line.strip())


def member_down_times(cluster: Any, offsets: dict[str, int]) -> list[tuple[str, str, float]]:
    """(observer, member, wall-clock time of the log line) for every MemberDown logged since ``offsets``."""
    out: list[tuple[str, str, float]] = []
    for node in cluster.node_names:
        for line in cluster.log(node)[offsets.get(node, 0):].splitlines():
            m = MEMBER_DOWN.search(line)
            stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ", line)
            if m and stamp:
                wall = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(stamp.group(2)) / 1000
                out.append((node, m.group(1), wall))
    return out


def explain_downs(downs: list[tuple[str, str, float]], arrivals: dict[str, dict[str, list[float]]],
                  ips: dict[str, str], dead_timeout: float) -> list[dict[str, Any]]:
    """Why each false MemberDown happened, from the sniffers' kernel stamps (every node's interface sees the
    member's datagrams leave, when it is the member, and arrive, when it is the observer):

    - ``sender``: the member sent nothing for a dead timeout before it (its process, or its sending, stalled);
    - ``network``: it sent, but nothing reached the observer's interface for a dead timeout;
    - ``reverse``: its datagrams reached the observer in time, but the member had heard nothing from the observer
      for most of a dead timeout, so what it sent echoed nothing recent and was refused as ``stale`` (a
      heartbeat is fresh only if it echoes one of the observer's own from the last dead timeout: anti-replay);
    - ``observer``: its datagrams reached the observer's interface in time, and the observer read them late
      without seeing its own stall (the one case the core's stall grace is there for).
    """
    out: list[dict[str, Any]] = []
    for observer, member, wall in downs:
        ip = ips.get(member, "")
        sent = [t for t in arrivals.get(member, {}).get(ip, []) if t < wall]
        seen = [t for t in arrivals.get(observer, {}).get(ip, []) if t < wall]
        heard = [t for t in arrivals.get(member, {}).get(ips.get(observer, ""), []) if t < wall]
        sender_silent = wall - sent[-1] if sent else None
        observer_silent = wall - seen[-1] if seen else None
        member_deaf = wall - heard[-1] if heard else None
        if sender_silent is not None and sender_silent >= dead_timeout:
            why = "sender"
        elif observer_silent is not None and observer_silent >= dead_timeout:
            why = "network"
        elif member_deaf is not None and member_deaf >= dead_timeout * 0.7:
            why = "reverse"
        elif observer_silent is not None:
            why = "observer"
        else:
            why = "unknown"
        out.append({"observer": observer, "member": member, "why": why,
                    "member_sent_ms_before": round(sender_silent * 1000) if sender_silent is not None else None,
                    "observer_saw_ms_before": round(observer_silent * 1000) if observer_silent is not None else None,
                    "member_heard_ms_before": round(member_deaf * 1000) if member_deaf is not None else None})
    return out


def member_downs(cluster: Any, offsets: dict[str, int]) -> list[tuple[str, str]]:
    """(observer, member) for every MemberDown logged since ``offsets``."""
    out: list[tuple[str, str]] = []
    for node in cluster.node_names:
        text = cluster.log(node)[offsets.get(node, 0):]
        out += [(node, m) for m in MEMBER_DOWN.findall(text)]
    return out


def run_load(name: str, cluster: Any, args: argparse.Namespace) -> dict[str, Any]:
    from ironlb.lab.cluster import VIP
    from ironlb.lab.failover import measure_failover, restore

    lan = cluster.lan
    lab = lan.lab
    result: dict[str, Any] = {"load": name, "notes": {}}
    # A node revived during the previous load may still be parsing that load's manifest at start-up: wait for it.
    owner = cluster.wait_steady(VIP, timeout=240)
    if owner is None:
        raise RuntimeError(f"no steady state before {name}: {cluster.announcers(VIP)}")
    with load(name, cluster, args, result["notes"]):
        rejected_before, drops_before, full_before = rejected_counts(cluster), backlog_drops(), socket_drops(cluster)
        cpu_before, cpu_t0 = fast_cpu(cluster), time.monotonic()
        offsets = {n: len(cluster.log(n)) for n in cluster.node_names}
        members = ",".join(n.ip for n in lan.nodes)
        sniffers = {n.name: Cmd(lab, n.netns, ["_sniff", "--members", members, "--duration", str(args.duration)])
                    for n in lan.nodes}  # fmt: skip
        pinger = Cmd(lab, lan.client.netns, ["_arpping", VIP, "--duration", str(args.duration)])
        probe = Cmd(lab, lan.client.netns, ["_stallprobe", "--duration", str(args.duration)])
        announcers: set[tuple[str, ...]] = set()
        changes = 0
        last: tuple[str, ...] | None = None
        end = time.monotonic() + args.duration
        while time.monotonic() < end:
            now = tuple(cluster.announcers(VIP))
            if last is not None and now != last:
                changes += 1
            last = now
            announcers.add(now)
            time.sleep(0.25)
        gaps: list[float] = []
        worst: dict[str, float] = {}
        arrivals: dict[str, dict[str, list[float]]] = {}
        for receiver, sniffer in sniffers.items():
            data = sniffer.result(timeout=30)
            arrivals[receiver] = data.get("arrivals", {})
            for src, values in data.get("gaps", {}).items():
                gaps += values
                if values:
                    worst[f"{src}->{receiver}"] = round(max(values), 1)
        arp = pinger.result(timeout=30)
        stalls = probe.result(timeout=30)
        downs = member_downs(cluster, offsets)
        why = explain_downs(member_down_times(cluster, offsets), arrivals, {n.name: n.ip for n in lan.nodes},
                            cluster.ml_dead_timeout)  # fmt: skip
        rejected_after, drops_after, full_after = rejected_counts(cluster), backlog_drops(), socket_drops(cluster)
        cpu_after, cpu_span = fast_cpu(cluster), time.monotonic() - cpu_t0
        rejected = {  # for WHEN_KEY: the seconds between the two reads of that node
            node: {k: round(v - rejected_before.get(node, {}).get(k, 0.0), 3 if k == WHEN_KEY else None)
                   for k, v in counts.items()}
            for node, counts in rejected_after.items()
        }  # fmt: skip
        result.update(
            rejected={node: {k: v for k, v in c.items() if v and k not in (STALLS_KEY, WHEN_KEY)}
                      for node, c in rejected.items()},
            rejected_per_second={
                node: round(sum(v for k, v in c.items() if k not in (STALLS_KEY, WHEN_KEY)) / c[WHEN_KEY])
                for node, c in rejected.items() if c.get(WHEN_KEY) and WHEN_KEY in rejected_before.get(node, {})
            },
            local_stalls={node: c.get(STALLS_KEY, 0) for node, c in rejected.items()},
            fast_cpu_percent={n: round(100 * (v - cpu_before.get(n, 0.0)) / cpu_span, 1) for n, v in cpu_after.items()},
            backlog_drops=drops_after - drops_before,
            socket_buffer_drops={n: v - full_before.get(n, 0) for n, v in full_after.items()},
            realtime_dropped=sum(cluster.log(n)[offsets[n]:].count("back to normal scheduling")
                                 for n in cluster.node_names),
            false_member_down=len(downs),
            member_down_lines=downs[:10],
            member_down_why=why,
            announcer_changes=changes,
            heartbeat_gap_ms=_stats(gaps),
            worst_gap_ms=worst,
            arp_ms=_stats(arp["rtts"]),
            arp_client_ms=_stats(arp.get("user_rtts", [])),
            arp_lost=arp["lost"],
            machine_stalls_ms=[ms for _wall, ms in stalls["late"]],
        )
        # Failovers with the load still running.
        failovers: list[float] = []
        errors: list[str] = []
        details: list[dict[str, int | None]] = []
        false_during: list[tuple[str, str]] = []
        with cluster.probe(VIP) as probe:
            if not probe.wait_ready():
                raise RuntimeError("client probe did not start")
            for _ in range(args.failovers):
                offsets = {n: len(cluster.log(n)) for n in cluster.node_names}
                wall0 = time.time()
                r = measure_failover(cluster, probe)
                if r.total_ms is not None:
                    failovers.append(r.total_ms)
                if r.new is not None:
                    # Where the time went: the new node's fast path logs the MemberDown, its main process the
                    # new member set; then its status file, its gratuitous ARP, the client's first answer.
                    down = cluster.log_time(r.new, rf"MemberDown\(name='{r.dead}'", wall0)
                    details.append({
                        "member_down_ms": round((down - wall0) * 1000) if down is not None else None,
                        "main_sees_it_ms": round(r.detect_ms) if r.detect_ms is not None else None,
                        "status_ms": round(r.announce_ms) if r.announce_ms is not None else None,
                        "garp_ms": round(r.garp_ms) if r.garp_ms is not None else None,
                        "answer_ms": round(r.total_ms) if r.total_ms is not None else None,
                    })  # fmt: skip
                if r.error:
                    errors.append(r.error)
                false_during += [(o, m) for o, m in member_downs(cluster, offsets) if m != r.dead and o != r.dead]
                if r.dead != "?" and not restore(cluster, r.dead, probe, timeout=60):
                    errors.append(f"{r.dead} did not take the VIP back")
                    break
                time.sleep(1.0)
        result.update(
            failover_ms=failovers,
            failover_details=details,
            failover_p95=percentile(failovers, 95) if failovers else None,
            failover_errors=errors,
            false_member_down_during_failovers=len(false_during),
        )
    return result


def show(r: dict[str, Any]) -> None:
    def s(d: dict[str, float]) -> str:
        if not d.get("n"):
            return "no data"
        return f"p50 {d['p50']:.1f}  p99 {d['p99']:.1f}  max {d['max']:.1f} ms (n={d['n']:.0f})"

    print(f"\n== load: {r['load']}  {json.dumps(r['notes'])}")
    print(f"  false MemberDown: {r['false_member_down']}  announcer changes: {r['announcer_changes']}"
          + (f"  {r['member_down_lines']}" if r["member_down_lines"] else ""))  # fmt: skip
    print(f"  heartbeat inter-arrival: {s(r['heartbeat_gap_ms'])}   worst pair {max(r['worst_gap_ms'].values(), default=0)} ms")
    print(f"  ARP answer (kernel stamps at the client): {s(r['arp_ms'])}   unanswered {r['arp_lost']}")
    print(f"  ARP answer (client's clock): {s(r['arp_client_ms'])}")
    if r.get("fast_cpu_percent"):
        print(f"  fast processes' CPU (% of a core) during the measurement: {json.dumps(r['fast_cpu_percent'])}")
    if r.get("local_stalls"):
        print(f"  late ticks forgiven as the node's own stall: {json.dumps(r['local_stalls'])}")
    for d in r.get("member_down_why", []):
        print(f"    MemberDown {d['observer']} -> {d['member']}: {d['why']} (the member's last datagram left "
              f"{d['member_sent_ms_before']} ms before, the observer's interface saw one {d['observer_saw_ms_before']}"
              f" ms before, the member's interface saw the observer's {d['member_heard_ms_before']} ms before)")  # fmt: skip
    if r.get("rejected") is not None:
        print(f"  membership datagrams rejected during the measurement, by node: {json.dumps(r['rejected'])} (per "
              f"second between the reads: {json.dumps(r.get('rejected_per_second'))}); kernel "
              f"input backlog drops (whole machine) {r.get('backlog_drops')}; full socket buffer drops by node "
              f"{json.dumps(r.get('socket_buffer_drops'))}; fast processes back to normal scheduling "
              f"{r.get('realtime_dropped')}")  # fmt: skip
    stalls = r.get("machine_stalls_ms", [])
    print(f"  machine stalls (a real-time probe's 10 ms sleeps late by > 20 ms): {len(stalls)}"
          + (f", max {max(stalls):.0f} ms" if stalls else ""))  # fmt: skip
    for d in r.get("failover_details", []):
        print("    failover: " + ", ".join(f"{k} {v}" for k, v in d.items()))
    fo = ", ".join(f"{v:.0f}" for v in r["failover_ms"])
    print(f"  failover under load (ms): {fo or '-'}  p95 {r['failover_p95'] or '-'}  "
          f"false MemberDown meanwhile {r['false_member_down_during_failovers']}"
          + (f"  errors {r['failover_errors']}" if r["failover_errors"] else ""))  # fmt: skip


def verdict(results: list[dict[str, Any]]) -> bool:
    ok = True
    for r in results:
        checks = {
            "no false failover": r["false_member_down"] == 0 and r["announcer_changes"] == 0
            and r["false_member_down_during_failovers"] == 0,
            "heartbeat gap p99 < 150 ms": r["heartbeat_gap_ms"].get("p99", 1e9) < TARGETS["heartbeat gap p99"],
            "ARP p99 < 20 ms": r["arp_ms"].get("p99", 1e9) < TARGETS["arp p99"] and r["arp_lost"] == 0,
            "failover p95 < 1 s": r["failover_p95"] is not None and r["failover_p95"] < TARGETS["failover p95"]
            and not r["failover_errors"],
        }  # fmt: skip
        missed = [k for k, v in checks.items() if not v]
        ok = ok and not missed
        print(f"  {r['load']:<9} {'all targets met' if not missed else 'MISSED: ' + ', '.join(missed)}")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="helper")
    p = sub.add_parser("_sniff")
    p.add_argument("--members", required=True)
    p.add_argument("--iface", default="eth0")
    p.add_argument("--duration", type=float, default=30)
    p.set_defaults(func=sniff_main)
    p = sub.add_parser("_arpping")
    p.add_argument("ip")
    p.add_argument("--iface", default="eth0")
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--duration", type=float, default=30)
    p.set_defaults(func=arpping_main)
    p = sub.add_parser("_stallprobe")
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--threshold", type=float, default=20.0, help="ms late that counts as a stall")
    p.set_defaults(func=stallprobe_main)
    p = sub.add_parser("_flood")
    p.add_argument("--targets", required=True)
    p.add_argument("--rate", type=int, default=50_000)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=flood_main)
    p = sub.add_parser("_webhook_server")
    p.add_argument("--address", required=True)
    p.set_defaults(func=webhook_server_main)
    p = sub.add_parser("_webhook_client")
    p.add_argument("--address", required=True)
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--duration", type=float, default=30)
    p.set_defaults(func=webhook_client_main)
    p = sub.add_parser("_bgppeer")
    p.add_argument("--address", required=True)
    p.add_argument("--updates", type=int, default=1250)
    p.add_argument("--duration", type=float, default=60)
    p.set_defaults(func=bgppeer_main)
    parser.add_argument("--loads", default="baseline,bgp,manifest,junk,webhook,all")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per measurement")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    parser.add_argument("--failovers", type=int, default=3, help="announcer kills per load, load running")
    parser.add_argument("--bgp-updates", type=int, default=1250, help="UPDATEs per table (800 prefixes each)")
    parser.add_argument("--manifest-mb", type=float, default=20.0)
    parser.add_argument("--junk-rate", type=int, default=50_000, help="junk membership datagrams per second")
    parser.add_argument("--flooders", type=int, default=2, help="processes sharing the junk rate")
    parser.add_argument("--junk-nodes", type=int, default=3, help="flood only the first N nodes (all of it on one: 1)")
    parser.add_argument("--nice", type=int, default=0, help="run the nodes' ironlb at this nice value")
    parser.add_argument("--fastpath", choices=("process", "thread"), default="process",
                        help="the nodes' --fastpath: membership, ARP/NDP and BFD in a process of their own, or a thread")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write all results here")
    parser.add_argument("--prefix", default=None, help="namespace prefix (default ilbchaos + random hex)")
    args = parser.parse_args(argv)
    if args.helper:
        code: int = args.func(args)
        return code

    from ironlb.lab.demo import terminate_as_exit
    from ironlb.lab.netns import netns_available

    reason = netns_available()
    if reason:
        print(f"chaos: {reason}", file=sys.stderr)
        return 2
    with terminate_as_exit():  # SIGTERM runs the clean-up in measure()'s finally
        return measure(args)


def measure(args: argparse.Namespace) -> int:
    """Build the LAN and the three nodes, run every load, print the figures; 0 if every target was met."""
    from tests.support.cluster_run import cluster_run

    from ironlb.lab.cluster import StandaloneCluster
    from ironlb.lab.lan import build_lan, start_http_servers

    prefix = args.prefix or f"ilbchaos{secrets.token_hex(3)}"
    started = datetime.now(UTC)
    print(f"ironlb chaos benchmark, {started:%Y-%m-%d %H:%M} UTC, {platform.node()}, {platform.machine()}, "
          f"{os.cpu_count()} cores, kernel {platform.release()}, Python {platform.python_version()}")  # fmt: skip
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"loads {args.loads}: {args.duration:.0f} s each after {args.warmup:.0f} s of warm-up, then {args.failovers} "
          f"failovers; BGP table {args.bgp_updates * PREFIXES_PER_UPDATE} prefixes, manifest {args.manifest_mb} MB, "
          f"junk {args.junk_rate}/s; fast path in a {args.fastpath}"
          + (f"; nodes at nice {args.nice}" if args.nice else ""))  # fmt: skip
    results: list[dict[str, Any]] = []
    with cluster_run(prefix) as run:
        lan = build_lan(run.lab)
        args.attacker_ns = add_attacker(lan)
        start_http_servers(lan)
        run.cluster = cluster = StandaloneCluster(
            lan, run.workdir,
            extra_args=("--max-file-size", "64Mi", "--max-total-size", "128Mi", "--fastpath", args.fastpath),
        )  # fmt: skip
        if args.nice:
            command = cluster.command
            cluster.command = lambda node: ["nice", "-n", str(args.nice), *command(node)]  # type: ignore[method-assign]
        cluster.apply_seed()
        cluster.start_all()
        for name in args.loads.split(","):
            r = run_load(name, cluster, args)
            show(r)
            results.append(r)
    print("load average at end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print("\nsummary")
    ok = verdict(results)
    if args.json:
        args.json.write_text(json.dumps({"date": started.isoformat(), "results": results}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    from tests.support.cluster_run import exit_with

    exit_with("chaos", main)

