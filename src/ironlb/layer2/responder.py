"""The asyncio shell around the Layer 2 codecs (:mod:`.wire`) and core (:mod:`.fsm`): raw sockets, takeover.

One :class:`PacketLink` per selected interface holds an AF_PACKET socket for ARP and
one for IPv6 (NDP), driven by ``loop.add_reader``: no threads. :class:`Responder`
owns the announced set, answers requests through the pure :mod:`.fsm` functions,
sends gratuitous ARP / unsolicited NA on takeover and rescans interfaces.

Hand-over (make before break): an IP given to another node (:meth:`Responder.set_announced` with ``hand_over``,
or :meth:`Responder.release` on a clean stop) is still answered, without gratuitous announcements, until another
host claims it on the wire (its gratuitous ARP / unsolicited NA, :func:`.fsm.claimed`) or ``handover_timeout``
passes. So the new owner has spoken before the old one falls silent, and a client asking in between is answered.

Stand-ins (:meth:`Responder.stand_in`): while another node's speaker restarts, this node answers for some of that
node's IPs with that node's MAC and probes it (:mod:`.standin`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import functools
import logging
import math
import socket
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import TracebackType
from typing import Final, Protocol, Self

from ironlb.layer2.fsm import REASON_NOT_ANNOUNCED, Verdict, claimed, decide_arp, decide_ndp
from ironlb.layer2.interfaces import (
    ALL,
    DEFAULT_EXCLUDE_PATTERNS,
    AllInterfaces,
    InterfaceRecord,
    InterfaceSelector,
    SelectedInterface,
    read_interfaces,
    select_interfaces,
)
from ironlb.layer2.metrics import Layer2Metrics
from ironlb.layer2.standin import HeldLink, StandIns
from ironlb.layer2.standin_metrics import StandInMetrics
from ironlb.layer2.wire.arp import ARP_REQUEST, ArpPacket, build_arp, build_gratuitous, parse_arp
from ironlb.layer2.wire.ethernet import ETH_P_ARP, ETH_P_IPV6, ZERO_MAC, FrameError, mac_to_str
from ironlb.layer2.wire.ndp import (
    NeighborAdvertisement,
    NeighborSolicitation,
    build_ndp,
    build_unsolicited_advertisement,
    multicast_mac,
    parse_ndp,
    solicited_node_address,
)
from ironlb.sockets import set_receive_buffer

log = logging.getLogger(__name__)

IPAddress = IPv4Address | IPv6Address

SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_DROP_MEMBERSHIP: Final = 2
PACKET_MR_MULTICAST: Final = 0
PACKET_OUTGOING: Final = 4
PACKET_IGNORE_OUTGOING: Final = 23
SO_ATTACH_FILTER: Final = 26
RECEIVE_BUFFER: Final = 4 << 20  # bytes asked for each packet socket's receive queue (see PacketLink._open)
_MAX_FRAMES_PER_WAKEUP: Final = 64
_RECV_SIZE: Final = 2048


class Kind(enum.Enum):
    """Which protocol a frame belongs to."""

    ARP = "arp"
    NDP = "ndp"


FrameHandler = Callable[["Link", Kind, bytes], None]


class Link(Protocol):
    """What the Responder needs from one interface's sockets (faked in unit tests)."""

    @property
    def iface(self) -> SelectedInterface: ...

    def send(self, kind: Kind, frame: bytes) -> bool: ...

    def join(self, group: IPv6Address) -> None: ...

    def leave(self, group: IPv6Address) -> None: ...

    def close(self) -> None: ...


LinkFactory = Callable[[SelectedInterface, FrameHandler], Link]


def _ndp_filter() -> bytes:
    """Classic BPF: accept only IPv6 ICMPv6 types 135 (NS) and 136 (NA, for hand-overs) without extension headers.

    This keeps ordinary IPv6 traffic out of Python; the codec still validates
    everything it is given, so the filter is an optimisation, not a check.
    """
    insns = [
        (0x28, 0, 0, 12),  # ldh [12]            ethertype
        (0x15, 0, 6, ETH_P_IPV6),  # jeq IPv6 else drop
        (0x30, 0, 0, 20),  # ldb [20]            next header
        (0x15, 0, 4, 58),  # jeq ICMPv6 else drop
        (0x30, 0, 0, 54),  # ldb [54]            ICMPv6 type
        (0x15, 1, 0, 135),  # jeq NS: accept
        (0x15, 0, 1, 136),  # jeq NA: accept, else drop
        (0x06, 0, 0, 0x40000),  # ret accept
        (0x06, 0, 0, 0),  # ret drop
    ]
    return b"".join(struct.pack("HBBI", *insn) for insn in insns)


def _attach_filter(sock: socket.socket, program: bytes) -> None:
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HP", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class PacketLink:
    """AF_PACKET sockets of one interface, registered with the event loop."""

    def __init__(
        self,
        iface: SelectedInterface,
        handler: FrameHandler,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._iface = iface
        self._handler = handler
        self._loop = loop or asyncio.get_running_loop()
        self._socks: dict[Kind, socket.socket] = {}
        self._mc6: socket.socket | None = None
        try:
            if iface.arp:
                self._socks[Kind.ARP] = self._open(ETH_P_ARP, None)
            if iface.ndp:
                self._socks[Kind.NDP] = self._open(ETH_P_IPV6, _ndp_filter())
                self._mc6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except OSError:
            self.close()
            raise
        for kind, sock in self._socks.items():
            self._loop.add_reader(sock.fileno(), self._on_readable, kind, sock)

    @property
    def iface(self) -> SelectedInterface:
        return self._iface

    def _open(self, proto: int, program: bytes | None) -> socket.socket:
        # The receive queue holds a whole hand-over's claims: successors announce every IP they take at once (two
        # frames per IPv4 address), which overflowed the default queue (about 200 KiB, a few hundred frames) at a
        # few hundred IPs while the loop was busy; each lost claim kept the old owner waiting its full timeout.
        # Protocol 0 at creation: the socket hears nothing until bound to this
        # interface, so no frame from another interface is ever queued on it.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # kernel < 4.20: filtered in _on_readable
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            granted = set_receive_buffer(sock, RECEIVE_BUFFER)
            if granted < RECEIVE_BUFFER:
                log.debug("receive queue of %s: %d bytes (net.core.rmem_max caps it without CAP_NET_ADMIN); a "
                          "hand-over of many IPs may lose claims while the loop is busy", self._iface.name, granted)
            if program is not None:
                try:
                    _attach_filter(sock, program)
                except OSError as exc:
                    log.warning("BPF filter not attached on %s (%s); filtering in Python", self._iface.name, exc)
            sock.bind((self._iface.name, proto))
        except OSError:
            sock.close()
            raise
        return sock

    def _on_readable(self, kind: Kind, sock: socket.socket) -> None:
        for _ in range(_MAX_FRAMES_PER_WAKEUP):
            try:
                frame, addr = sock.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ENETDOWN when the link goes away
                log.debug("recv on %s failed: %s", self._iface.name, exc)
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            try:
                self._handler(self, kind, frame)
            except Exception:  # one bad frame must not kill the responder
                log.exception("error handling %s frame on %s", kind.value, self._iface.name)

    def send(self, kind: Kind, frame: bytes) -> bool:
        """Send a frame; False (logged) if the socket is missing or the kernel refused."""
        sock = self._socks.get(kind)
        if sock is None:
            return False
        try:
            sock.send(frame)
        except OSError as exc:
            log.warning("sending %s frame on %s failed: %s", kind.value, self._iface.name, exc)
            return False
        return True

    def join(self, group: IPv6Address) -> None:
        """Receive ``group``: link-layer filter (PACKET_ADD_MEMBERSHIP) and MLD (IPV6_JOIN_GROUP)."""
        self._membership(group, PACKET_ADD_MEMBERSHIP, socket.IPV6_JOIN_GROUP)

    def leave(self, group: IPv6Address) -> None:
        """Undo :meth:`join`."""
        self._membership(group, PACKET_DROP_MEMBERSHIP, socket.IPV6_LEAVE_GROUP)

    def _membership(self, group: IPv6Address, packet_op: int, ipv6_op: int) -> None:
        sock = self._socks.get(Kind.NDP)
        if sock is None or self._mc6 is None:
            return
        mreq = struct.pack("iHH8s", self._iface.index, PACKET_MR_MULTICAST, 6, multicast_mac(group))
        try:
            sock.setsockopt(SOL_PACKET, packet_op, mreq)
        except OSError as exc:
            log.warning("packet membership %s on %s failed: %s", group, self._iface.name, exc)
        try:
            self._mc6.setsockopt(socket.IPPROTO_IPV6, ipv6_op, group.packed + struct.pack("@I", self._iface.index))
        except OSError as exc:
            log.warning("IPv6 membership %s on %s failed: %s", group, self._iface.name, exc)

    def close(self) -> None:
        """Unregister and close; closing the sockets drops all memberships."""
        for sock in self._socks.values():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._socks.clear()
        if self._mc6 is not None:
            self._mc6.close()
            self._mc6 = None


@functools.lru_cache(maxsize=1 << 16)
def _parse_ip(text: str) -> IPAddress:
    """Parsed once per text: every decision names every announced IP, and parsing costs microseconds each."""
    return ip_address(text)


def _as_ip(ip: IPAddress | str) -> IPAddress:
    return _parse_ip(ip) if isinstance(ip, str) else ip


def _as_selector(interfaces: Iterable[str] | AllInterfaces) -> InterfaceSelector:
    if isinstance(interfaces, AllInterfaces):
        return ALL
    if isinstance(interfaces, str):  # a lone name, not an iterable of characters
        return frozenset((interfaces,))
    return frozenset(interfaces)


def _link_key(iface: SelectedInterface) -> tuple[int, bytes, bool, bool]:
    """What, when changed, needs new sockets (the link-local address does not)."""
    return (iface.index, iface.mac, iface.arp, iface.ndp)


MAX_HEARD_CLAIMS = 4096
"""Claims for IPs we do not announce remembered at once (each for ``handover_timeout``)."""


_NO_CLAIM: tuple[float, bytes] = (-math.inf, b"")

class Responder:
    """Answers ARP/NDP for announced IPs and announces takeovers.

    Drive it with :meth:`set_announced` (the full desired state) or
    :meth:`announce` / :meth:`withdraw`. It must be used on one event loop (in ``ironlb run`` and
    ``ironlb speaker``, the fast path's: ``ironlb.fastpath``); only :attr:`interface_names` may be read from
    another thread.
    A takeover is announced at once, then every ``gratuitous_interval`` seconds until
    ``gratuitous_duration`` seconds after the latest trigger; a duration of 0 disables
    takeover announcements (clients then keep the old MAC until their cache expires).
    """

    def __init__(
        self,
        *,
        exclude: Sequence[str] = DEFAULT_EXCLUDE_PATTERNS,
        rescan_interval: float = 10.0,
        gratuitous_interval: float = 1.1,
        gratuitous_duration: float = 5.0,
        handover_timeout: float = 2.0,
        metrics: Layer2Metrics | None = None,
        interface_reader: Callable[[], list[InterfaceRecord]] = read_interfaces,
        link_factory: LinkFactory | None = None,
        probe_interval: float = 0.1,
        on_unreachable: Callable[[str], None] | None = None,
        standin_metrics: StandInMetrics | None = None,
    ) -> None:
        if gratuitous_interval <= 0 or rescan_interval <= 0:
            raise ValueError("intervals must be positive")
        if not 0 <= handover_timeout < math.inf:
            raise ValueError(f"handover_timeout must be finite and not negative, not {handover_timeout!r}")
        self._exclude = tuple(exclude)
        self._rescan_interval = rescan_interval
        self._gratuitous_interval = gratuitous_interval
        self._gratuitous_duration = gratuitous_duration
        self._handover_timeout = handover_timeout
        self._metrics = metrics if metrics is not None else Layer2Metrics(None)
        self.standin_metrics = standin_metrics if standin_metrics is not None else StandInMetrics(None)
        self._reader = interface_reader
        self._link_factory: LinkFactory = link_factory or (lambda iface, handler: PacketLink(iface, handler))
        self._announced: dict[IPAddress, InterfaceSelector] = {}
        # Given away, still answered until claimed by another host or the deadline (loop time).
        self._releasing: dict[IPAddress, tuple[InterfaceSelector, float]] = {}
        self._claimed_at: dict[IPAddress, tuple[float, bytes]] = {}  # another host claimed an IP we announce: when, MAC
        # Claims heard for IPs we did not announce then (loop time, MAC), kept for a hand-over's length: an IP we
        # announce only briefly (an election decided on a view one member short) and give back is already owned.
        self._heard: dict[IPAddress, tuple[float, bytes]] = {}
        self._heard_pruned = -math.inf
        self._expiry: dict[float, asyncio.TimerHandle] = {}  # one timer per hand-over deadline
        self._released = asyncio.Event()
        self._released.set()
        self._links: dict[str, Link] = {}
        self._joined: dict[str, set[IPv6Address]] = {}
        self._v4_by_link: dict[str, frozenset[IPv4Address]] = {}
        self._v6_by_link: dict[str, frozenset[IPv6Address]] = {}
        self._deadlines: dict[IPAddress, float] = {}
        self._spam_tasks: dict[IPAddress, asyncio.Task[None]] = {}
        self._rescan_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._stand = StandIns(grace=handover_timeout)
        self._probe_interval = probe_interval
        self._probe_task: asyncio.Task[None] | None = None
        self.on_unreachable = on_unreachable
        """Called with a held node's name when it stopped answering our probes (the membership ends its hold)."""
        self.interface_names: frozenset[str] = frozenset()
        """Names of the interfaces with responders: an immutable snapshot, safe to read from any thread."""

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Scan interfaces, open sockets and start the periodic rescan."""
        if self._closed:
            raise RuntimeError("responder is closed")
        self._loop = asyncio.get_running_loop()
        self.rescan()
        self._rescan_task = self._loop.create_task(self._rescan_loop(), name="l2-rescan")

    async def close(self) -> None:
        """Stop all tasks and close every socket; idempotent."""
        self._closed = True
        tasks = [t for t in (self._rescan_task, self._probe_task, *self._spam_tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._spam_tasks.clear()
        self._rescan_task = None
        self._probe_task = None
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        self._releasing.clear()
        self._released.set()
        for link in self._links.values():
            link.close()
        self._links.clear()
        self._joined.clear()
        self.interface_names = frozenset()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------- public API
    @property
    def announced(self) -> dict[IPAddress, InterfaceSelector]:
        """A copy of the announced set."""
        return dict(self._announced)

    @property
    def interfaces(self) -> list[SelectedInterface]:
        """Interfaces that currently have responders, by name."""
        return [self._links[name].iface for name in sorted(self._links)]

    @property
    def releasing(self) -> frozenset[IPAddress]:
        """IPs given away but still answered until the new owner claims them."""
        return frozenset(self._releasing)

    def set_announced(
        self,
        announced: Mapping[IPAddress | str, Iterable[str] | AllInterfaces],
        hand_over: Iterable[IPAddress | str] = (),
    ) -> None:
        """Replace the announced set: ``ip -> interface names`` or ``ALL``.

        IPs that are new, or whose interfaces changed, are announced at once with
        gratuitous ARP / unsolicited NA, repeated until ``gratuitous_duration`` has
        passed; withdrawn IPs are no longer answered (no goodbye packet, as MetalLB),
        except those in ``hand_over`` (another live node now owns them): these are
        still answered until the new owner claims them, or ``handover_timeout``.
        """
        wanted: dict[IPAddress, InterfaceSelector] = {}
        for raw_ip, interfaces in announced.items():
            wanted[_as_ip(raw_ip)] = _as_selector(interfaces)
        self._apply(wanted, {_as_ip(ip) for ip in hand_over})

    def _apply(self, wanted: dict[IPAddress, InterfaceSelector], hand_over: set[IPAddress] | None = None) -> None:
        triggered = [ip for ip, sel in wanted.items() if self._announced.get(ip) != sel]
        now = self._loop.time() if self._loop is not None else 0.0
        if hand_over is not None:  # a full replacement: hand-overs no longer asked for stop now
            for ip in [ip for ip in self._releasing if ip not in hand_over]:
                del self._releasing[ip]
        for ip in set(self._announced) - set(wanted):
            self._stop_spam(ip)
            claim = max(self._claimed_at.pop(ip, _NO_CLAIM), self._heard.pop(ip, _NO_CLAIM))
            recently_claimed = now - claim[0] < self._handover_timeout
            if hand_over and ip in hand_over and self._handover_timeout > 0:
                if not recently_claimed:
                    self._release(ip, self._announced[ip], now + self._handover_timeout)
                else:
                    # Given back to the host that claimed it last: say so once, in case our own announcements
                    # (a brief ownership) moved clients' caches to us after that host's claim.
                    self._announce_at(ip, self._announced[ip], claim[1])
        for ip in wanted:
            self._releasing.pop(ip, None)
        for ip in triggered:
            self._claimed_at.pop(ip, None)
        self._announced = wanted
        self._sync_all_links()
        self._check_released()
        for ip in triggered:
            self.refresh(ip)

    def release(self, hand_over: Iterable[IPAddress | str], timeout: float | None = None) -> None:
        """Give everything away (a clean stop): the IPs in ``hand_over`` are still answered, without gratuitous
        announcements, until another host claims them or ``timeout`` (default ``handover_timeout``) passes; the
        others stop at once. Await :meth:`released` before closing."""
        now = self._loop.time() if self._loop is not None else 0.0
        deadline = now + (self._handover_timeout if timeout is None else timeout)
        keep = {_as_ip(ip) for ip in hand_over}
        for ip, sel in self._announced.items():
            self._stop_spam(ip)
            if ip in keep and deadline > now:
                self._release(ip, sel, deadline)
        self._announced = {}
        self._claimed_at.clear()
        self._sync_all_links()
        self._check_released()

    async def released(self) -> None:
        """Return once no IP is being handed over (every one claimed, or its deadline passed)."""
        await self._released.wait()

    def _release(self, ip: IPAddress, sel: InterfaceSelector, deadline: float) -> None:
        self._releasing[ip] = (sel, deadline)
        self._released.clear()
        if self._loop is not None and deadline not in self._expiry:  # a stop gives every IP the same deadline
            self._expiry[deadline] = self._loop.call_at(deadline, self._expire, deadline)

    def _expire(self, due: float) -> None:
        """The timer of deadline ``due`` fired (asyncio may run it a hair before ``due``, so compare with it)."""
        for deadline in [d for d in self._expiry if d <= due]:
            del self._expiry[deadline]
        expired = [ip for ip, (_, deadline) in self._releasing.items() if deadline <= due]
        for ip in expired:
            del self._releasing[ip]
        if expired:  # one line for a batch: a node handing over 1,000 IPs must not log 1,000 lines
            shown = ", ".join(str(ip) for ip in sorted(expired, key=str)[:5])
            more = f" and {len(expired) - 5} more" if len(expired) > 5 else ""
            log.info("hand-over: nobody claimed %d IPs within %.1fs (%s%s); no longer answering them",
                     len(expired), self._handover_timeout, shown, more)  # fmt: skip
        if expired:
            self._sync_all_links()
        self._check_released()

    def _check_released(self) -> None:
        if not self._releasing:
            self._released.set()

    def _on_claim(self, ip: IPAddress, mac: bytes) -> None:
        """Another host announced ``ip``: a hand-over is done; an IP we still own is no longer re-announced."""
        if ip in self._releasing:
            del self._releasing[ip]
            log.debug("hand-over of %s done: %s claimed it", ip, mac_to_str(mac))
            self._sync_all_links()
            self._check_released()
        elif ip in self._announced and self._loop is not None:
            # The election moves it to that host (a restarted owner coming back): do not fight its
            # announcements with ours; go on answering until our own decision drops it.
            self._claimed_at[ip] = (self._loop.time(), mac)
            self._stop_spam(ip)
        elif self._loop is not None:
            self._note_heard(ip, mac, self._loop.time())

    def _note_heard(self, ip: IPAddress, mac: bytes, now: float) -> None:
        """Remember a claim for an IP we do not announce, for a hand-over's length; bounded (a flood of claims
        for made-up IPs only makes a brief announcement's give-back wait its deadline, as without this)."""
        if len(self._heard) >= MAX_HEARD_CLAIMS:
            if now - self._heard_pruned < self._handover_timeout:
                return  # full of fresh claims (a flood): no pass over them per frame
            self._heard_pruned = now
            self._heard = {k: c for k, c in self._heard.items() if now - c[0] < self._handover_timeout}
            if len(self._heard) >= MAX_HEARD_CLAIMS:
                return
        self._heard[ip] = (now, mac)

    # ----------------------------------------------------------------- stand-ins
    @property
    def standing_in(self) -> dict[str, set[IPAddress]]:
        """The held nodes this node stands in for and their IPs still answered."""
        return {name: self._stand.ips_of(name) for name in self._stand.names}

    def count_stand_ins(self) -> None:
        """Set the stand-in IPs gauge (``standin_metrics``) to what is stood in for now."""
        self.standin_metrics.standing_in(self._stand.counts())

    def stand_in(self, name: str, links: Sequence[HeldLink], ips: Iterable[IPAddress], dead_after: float) -> None:
        """Answer ``ips`` with ``name``'s MAC where its probes are answered; report it when they stop."""
        if self._closed or self._loop is None:
            return
        self._stand.dead_after = dead_after
        self._stand.hold(name, links, ips, self._loop.time())
        log.info("standing in for %s (restarting): %d IPs, answered with its MAC", name, len(self._stand.all_ips()))
        self._sync_all_links()
        if self._probe_task is None or self._probe_task.done():
            self._probe(self._loop.time())  # at once: a reply within milliseconds lets us answer
            self._probe_task = self._loop.create_task(self._probe_loop(), name="l2-stand-in-probe")

    def stand_in_returned(self, name: str) -> None:
        """``name``'s speaker is back: answer until it claims its IPs, ``handover_timeout`` at most."""
        if self._loop is not None:
            self._stand.returned(name, self._loop.time())

    def stand_down(self, name: str) -> None:
        """Stop standing in for ``name`` (its hold ended)."""
        if name in self._stand.names:
            log.info("no longer standing in for %s", name)
            self._stand.drop(name)
            self._sync_all_links()

    def pause_stand_ins(self, paused: bool) -> None:
        """Without quorum a node answers nothing, stand-ins included."""
        self._stand.pause(paused)

    def _probe(self, now: float) -> None:
        for name in self._stand.expire(now):
            log.warning("%s (held for a restart) stopped answering our probes: its hold ends", name)
            if self.on_unreachable is not None:
                try:
                    self.on_unreachable(name)
                except Exception:
                    log.exception("on_unreachable callback failed")
        for held in self._stand.probes():
            for link in list(self._links.values()):
                iface = link.iface
                if isinstance(held.address, IPv4Address) and iface.arp:
                    request = ArpPacket(held.mac, iface.mac, ARP_REQUEST, iface.mac, IPv4Address(0), ZERO_MAC,
                                        held.address)  # fmt: skip
                    link.send(Kind.ARP, build_arp(request))
                elif isinstance(held.address, IPv6Address) and iface.ndp and iface.link_local is not None:
                    ns = NeighborSolicitation(held.mac, iface.mac, iface.link_local, held.address, held.address,
                                              iface.mac)  # fmt: skip
                    link.send(Kind.NDP, build_ndp(ns))

    async def _probe_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._stand.names:
            await asyncio.sleep(self._probe_interval)
            self._probe(loop.time())
            self._sync_all_links()
            self.count_stand_ins()  # the gauge follows claims and expiries too, wherever the fast path runs
        self.count_stand_ins()

    def announce(self, ip: IPAddress | str, interfaces: Iterable[str] | AllInterfaces = ALL) -> None:
        """Add or update one IP (see :meth:`set_announced`)."""
        self._apply({**self._announced, _as_ip(ip): _as_selector(interfaces)})

    def withdraw(self, ip: IPAddress | str) -> None:
        """Stop answering for one IP."""
        addr = _as_ip(ip)
        self._apply({k: v for k, v in self._announced.items() if k != addr})

    def refresh(self, ip: IPAddress | str) -> None:
        """(Re)start the gratuitous burst for an announced IP: send now unless a burst is
        running, and keep sending until ``gratuitous_duration`` after this call."""
        addr = _as_ip(ip)
        if addr not in self._announced or self._loop is None or self._closed or self._gratuitous_duration <= 0:
            return
        self._deadlines[addr] = self._loop.time() + self._gratuitous_duration
        task = self._spam_tasks.get(addr)
        if task is None or task.done():
            self._send_gratuitous(addr)  # at once, not on the next loop iteration
            self._spam_tasks[addr] = self._loop.create_task(self._spam(addr), name=f"l2-gratuitous-{addr}")

    def interfaces_for(self, ip: IPAddress | str) -> list[str]:
        """Names of current responder interfaces that announce ``ip`` (empty: none exist,
        the speaker's cue for an ``announceFailed`` event)."""
        addr = _as_ip(ip)
        sel = self._announced.get(addr)
        if sel is None:
            return []
        return [name for name in sorted(self._links) if self._covers(sel, self._links[name].iface, addr)]

    def rescan(self) -> None:
        """Re-read interfaces now: open responders on new ones, close vanished ones."""
        if self._closed:
            return
        try:
            selected = select_interfaces(self._reader(), self._exclude)
        except OSError as exc:
            log.warning("interface scan failed: %s", exc)
            return
        by_name = {iface.name: iface for iface in selected}
        for name in list(self._links):
            current = by_name.get(name)
            if current is None or _link_key(current) != _link_key(self._links[name].iface):
                log.info("closing layer2 responder on %s", name)
                self._links.pop(name).close()
                self._joined.pop(name, None)
        added: list[Link] = []
        for name, iface in by_name.items():
            if name in self._links:
                continue
            try:
                self._links[name] = self._link_factory(iface, self._on_frame)
            except OSError as exc:
                log.warning("cannot open layer2 responder on %s: %s", name, exc)
                continue
            log.info("layer2 responder on %s (%s) arp=%s ndp=%s", name, mac_to_str(iface.mac), iface.arp, iface.ndp)
            added.append(self._links[name])
        self.interface_names = frozenset(self._links)
        self._sync_all_links()
        for ip, sel in self._announced.items():
            new_links = [link for link in added if self._covers(sel, link.iface, ip)]
            if new_links:
                # A running burst would reach the new link only at its next round.
                if ip in self._spam_tasks:
                    self._send_gratuitous(ip, new_links)
                self.refresh(ip)

    # ----------------------------------------------------------------- internals
    @staticmethod
    def _covers(sel: InterfaceSelector, iface: SelectedInterface, ip: IPAddress) -> bool:
        if not (sel is ALL or iface.name in sel):
            return False
        return iface.arp if isinstance(ip, IPv4Address) else iface.ndp

    def _sync_all_links(self) -> None:
        """Recompute per-link lookup sets and multicast memberships from the announced and releasing sets."""
        self._v4_by_link.clear()
        self._v6_by_link.clear()
        answered = {ip: sel for ip, (sel, _) in self._releasing.items()}
        answered.update(self._announced)
        for name, link in self._links.items():
            iface = link.iface
            ips = [ip for ip, sel in answered.items() if self._covers(sel, iface, ip)]
            v6 = frozenset(ip for ip in ips if isinstance(ip, IPv6Address))
            self._v4_by_link[name] = frozenset(ip for ip in ips if isinstance(ip, IPv4Address))
            self._v6_by_link[name] = v6
            # Several VIPs can share one solicited-node group: the set of wanted groups
            # is the reference count, joined on first use and left when the last goes.
            wanted = {solicited_node_address(ip) for ip in v6}
            if iface.ndp:
                wanted.update(solicited_node_address(ip) for ip in self._stand.all_ips() if isinstance(ip, IPv6Address))
            joined = self._joined.setdefault(name, set())
            for group in sorted(wanted - joined):
                link.join(group)
            for group in sorted(joined - wanted):
                link.leave(group)
            self._joined[name] = wanted

    def _on_frame(self, link: Link, kind: Kind, frame: bytes) -> None:
        iface = link.iface
        decision: Verdict
        try:
            if kind is Kind.ARP:
                arp = parse_arp(frame)
                decision = decide_arp(arp, iface.mac, self._v4_by_link.get(iface.name, frozenset()))
                claim = claimed(arp, iface.mac)
                sender = arp.sender_mac
            else:
                ndp = parse_ndp(frame)
                decision = decide_ndp(ndp, iface.mac, self._v6_by_link.get(iface.name, frozenset()))
                claim = claimed(ndp, iface.mac)
                sender = ndp.eth_src
        except FrameError as exc:
            log.debug("dropped malformed %s frame on %s: %s", kind.value, iface.name, exc)
            return
        if claim is not None and not self._ours(sender):
            self._on_claim(claim, sender)
        held: str | None = None  # the held node whose MAC answers, when standing in
        if self._stand.names:
            decision, held = self._stand_in_frame(link, kind, frame, decision, claim, sender)
        if decision.ip is not None:
            self._metrics.request_received(decision.ip)
        if decision.reply is None:
            if decision.ip is not None:
                log.debug("not answering %s for %s on %s: %s", kind.value, decision.ip, iface.name, decision.reason)
            return
        if link.send(kind, decision.reply) and decision.ip is not None:
            self._metrics.response_sent(decision.ip)
            if held is not None:
                self.standin_metrics.answered(held)

    def _stand_in_frame(
        self, link: Link, kind: Kind, frame: bytes, decision: Verdict, claim: IPAddress | None, sender: bytes
    ) -> tuple[Verdict, str | None]:
        """A frame seen while standing in: a probe answer, a claim that ends a stand-in, or a request we answer
        (then with the held node's name)."""
        iface = link.iface
        now = self._loop.time() if self._loop is not None else 0.0
        if kind is Kind.ARP:
            arp = parse_arp(frame)
            self._stand.heard(iface.name, arp.sender_ip, arp.sender_mac, now)
        else:
            ndp = parse_ndp(frame)
            if isinstance(ndp, NeighborAdvertisement):
                self._stand.heard(iface.name, ndp.target, ndp.target_lladdr or ndp.eth_src, now)
        if claim is not None and not self._ours(sender):
            name = self._stand.claimed(claim, sender)
            if name is not None:
                log.debug("stand-in for %s of %s done: %s claimed it", name, claim, mac_to_str(sender))
        if decision.reason != REASON_NOT_ANNOUNCED:
            return decision, None
        answers = self._stand.answers(iface.name)
        target: IPAddress
        if kind is Kind.ARP:
            target = arp.target_ip
            mac = answers.get(target)
            if mac is None:
                return decision, None
            verdict = decide_arp(arp, mac, (arp.target_ip,))
        else:
            if not isinstance(ndp, NeighborSolicitation) or (mac := answers.get(ndp.target)) is None:
                return decision, None
            target = ndp.target
            verdict = decide_ndp(ndp, mac, (target,))
        if verdict.reply is None:
            return verdict, None
        # The held node's MAC in the answer, ours as the Ethernet source: no switch learns its MAC on our port.
        reply = Verdict(verdict.reply[:6] + iface.mac + verdict.reply[12:], verdict.reason, verdict.ip)
        return reply, self._stand.holder(target)

    def _ours(self, mac: bytes) -> bool:
        """One of this node's interfaces (our own announcement heard on another of our links is no claim)."""
        return any(link.iface.mac == mac for link in self._links.values())

    def _stop_spam(self, ip: IPAddress) -> None:
        self._deadlines.pop(ip, None)
        task = self._spam_tasks.pop(ip, None)
        if task is not None:
            task.cancel()

    def _announce_at(self, ip: IPAddress, sel: InterfaceSelector, owner_mac: bytes) -> None:
        """One gratuitous ARP / unsolicited NA saying ``ip`` is at ``owner_mac``, from our Ethernet address (so
        switches do not learn the owner's MAC on our port), on the links that announced it."""
        for link in list(self._links.values()):
            iface = link.iface
            if not self._covers(sel, iface, ip):
                continue
            if isinstance(ip, IPv4Address):
                frames = [(Kind.ARP, f) for f in build_gratuitous(ip, iface.mac, owner_mac)]
            else:
                frames = [(Kind.NDP, build_unsolicited_advertisement(ip, iface.mac, ip, owner_mac))]
            sent = sum(1 for kind, frame in frames if link.send(kind, frame))
            if sent:
                self._metrics.gratuitous_sent(str(ip), sent)

    def _send_gratuitous(self, ip: IPAddress, links: Iterable[Link] | None = None) -> None:
        sel = self._announced.get(ip)
        if sel is None:
            return
        for link in list(self._links.values() if links is None else links):
            iface = link.iface
            if not self._covers(sel, iface, ip):
                continue
            if isinstance(ip, IPv4Address):
                frames = [(Kind.ARP, f) for f in build_gratuitous(ip, iface.mac)]
            else:
                frames = [(Kind.NDP, build_unsolicited_advertisement(ip, iface.mac, ip))]
            sent = sum(1 for kind, frame in frames if link.send(kind, frame))
            if sent:
                self._metrics.gratuitous_sent(str(ip), sent)

    async def _spam(self, ip: IPAddress) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(self._gratuitous_interval)
                if ip not in self._announced or loop.time() >= self._deadlines.get(ip, 0.0):
                    return
                self._send_gratuitous(ip)
        finally:
            if self._spam_tasks.get(ip) is asyncio.current_task():
                del self._spam_tasks[ip]

    async def _rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self._rescan_interval)
            try:
                self.rescan()
            except Exception:  # keep rescanning whatever one scan hit
                log.exception("interface rescan failed")
