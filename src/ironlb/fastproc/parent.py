"""The heavy side's handle on the fast process: start it, feed it decisions, hear back from it.

:class:`FastProcess` spawns ``python -m ironlb.fastproc.child`` with one end of a Unix socket pair and talks to it
in frames (:mod:`.channel`). Three proxies give the rest of the process the interfaces it already uses:
:class:`RemoteResponder` (``set_announced``, ``interface_names``: the :class:`ironlb.announce.Announcer`'s
responder), :class:`RemoteMembership` (``view``, ``set_members``, ``stop``: what ``ironlb run`` reads) and
:class:`RemoteBFD` (a ``bfd_factory`` for the BGP speaker). A keepalive goes every :data:`KEEPALIVE` seconds from
the main loop: its absence is how the fast process tells a wedged heavy side (see :mod:`.guard`).

If the fast process dies, ``on_lost`` is called: the node cannot answer or detect failures any more, so
``ironlb run`` stops (its supervisor restarts it) rather than run half a node.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Protocol

from ironlb.config.types import BFDProfile
from ironlb.fastproc.channel import ChannelError, Decoder, Message, encode
from ironlb.fastproc.guard import GuardConfig
from ironlb.fastproc.spawn import Spawned, spawn
from ironlb.histogram import DETECTION_BUCKETS, LOOP_LAG_BUCKETS, Histogram
from ironlb.layer2 import AllInterfaces
from ironlb.layer2.interfaces import DEFAULT_EXCLUDE_PATTERNS
from ironlb.membership.config import MembershipConfig
from ironlb.membership.view import MembershipView
from ironlb.metrics.speaker import SpeakerMetrics

log = logging.getLogger(__name__)

KEEPALIVE = 1.0
"""Seconds between the heavy side's keepalives (the fast process's ``wedge_timeout`` is several of them)."""
START_TIMEOUT = 30.0
MAX_UNSENT = 64 * 1024 * 1024
"""Bytes queued for the fast process past which it counts as stuck (it reads everything at once when healthy)."""

__all__ = ["FastProcess", "FastProcessOptions", "RemoteBFD", "RemoteMembership", "RemoteResponder"]


class FastPathSettings(Protocol):
    """What ``SpeakerOptions`` and ``RunnerOptions`` both carry for the fast process."""

    @property
    def exclude_interfaces(self) -> tuple[str, ...]: ...
    @property
    def rescan_interval(self) -> float: ...
    @property
    def gratuitous_interval(self) -> float: ...
    @property
    def gratuitous_duration(self) -> float: ...
    @property
    def handover_timeout(self) -> float: ...
    @property
    def guard(self) -> GuardConfig: ...
    @property
    def log_level(self) -> str: ...


@dataclass(frozen=True)
class FastProcessOptions:
    exclude_interfaces: tuple[str, ...] = DEFAULT_EXCLUDE_PATTERNS
    rescan_interval: float = 10.0
    gratuitous_interval: float = 1.1
    gratuitous_duration: float = 5.0
    handover_timeout: float = 2.0
    guard: GuardConfig = field(default_factory=GuardConfig)
    log_level: str = "info"

    @classmethod
    def of(cls, source: FastPathSettings) -> FastProcessOptions:
        """The fast process's share of a speaker's or an ``ironlb run`` node's options (same field names)."""
        return cls(
            exclude_interfaces=source.exclude_interfaces,
            rescan_interval=source.rescan_interval,
            gratuitous_interval=source.gratuitous_interval,
            gratuitous_duration=source.gratuitous_duration,
            handover_timeout=source.handover_timeout,
            guard=source.guard,
            log_level=source.log_level,
        )


class FastProcess:
    """The child process and the channel to it. Use from the main loop only."""

    def __init__(
        self,
        options: FastProcessOptions,
        *,
        metrics: SpeakerMetrics | None = None,
        on_lost: Callable[[str], None] | None = None,
        spawned: Spawned | None = None,
    ) -> None:
        self.options = options
        self._spawned = spawned  # already started (spawn.spawn) with these options' log level
        self.metrics = metrics
        self.on_lost = on_lost
        self.responder = RemoteResponder(self)
        self.membership: RemoteMembership | None = None
        self.bfd = RemoteBFD(self)
        self.view_seq = 0
        self.rejected: dict[str, int] = {}
        self.stalls = 0  # the fast process's membership: late ticks treated as local stalls
        self.detections = Histogram(DETECTION_BUCKETS)  # its membership's failure detection times
        self.loop_lag = Histogram(LOOP_LAG_BUCKETS)  # how late its event loop runs timers
        self.proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._decoder = Decoder()
        self._outbuf = bytearray()
        self._writing = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: asyncio.Future[list[str]] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        """Spawn the child (unless it was spawned early, see :mod:`.spawn`) and wait until its responders run."""
        spawned, self._spawned = self._spawned or spawn(self.options.log_level), None
        self.proc, ours = spawned.proc, spawned.sock
        # Raw non-blocking I/O on the loop rather than streams: a message from the fast process (a member died) is
        # dispatched in the very loop iteration that sees it readable, not one or two iterations later (each of
        # which can hold a slice of BGP decoding on a busy node).
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        self._sock, self._loop = ours, loop
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        o = self.options
        self.send({
            "t": "start", "guard": asdict(o.guard),
            "responder": {"exclude": list(o.exclude_interfaces), "rescan_interval": o.rescan_interval,
                          "gratuitous_interval": o.gratuitous_interval,
                          "gratuitous_duration": o.gratuitous_duration, "handover_timeout": o.handover_timeout},
        })  # fmt: skip
        try:
            async with asyncio.timeout(START_TIMEOUT):
                ifaces = await self._ready
        except BaseException:
            await self._kill()
            raise
        self.responder.interface_names = frozenset(ifaces)
        self._tasks.append(loop.create_task(self._keepalive(), name="fastproc-keepalive"))
        log.info("fast path process %d started (responders on %s)", self.proc.pid, ",".join(ifaces) or "nothing")

    def send(self, message: Message) -> None:
        """Queue a message for the fast process (never waits; a child that stops reading is killed)."""
        if self._sock is None or self._closed:
            return
        self._outbuf += encode(message)
        self._flush()
        if len(self._outbuf) > MAX_UNSENT:
            log.error("the fast path process reads nothing any more: killing it")
            self._close_channel()
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()

    def _flush(self) -> None:
        sock, loop = self._sock, self._loop
        if sock is None or loop is None or self._closed:
            return
        while self._outbuf:
            try:
                sent = sock.send(self._outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the fast process is gone; the reader reports it
                self._outbuf.clear()
                break
            del self._outbuf[:sent]
        want = bool(self._outbuf)
        if want != self._writing:
            self._writing = want
            if want:
                loop.add_writer(sock.fileno(), self._flush)
            else:
                loop.remove_writer(sock.fileno())

    def _close_channel(self) -> None:
        sock, loop = self._sock, self._loop
        if sock is None or loop is None or self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            loop.remove_reader(sock.fileno())
        if self._writing:
            with contextlib.suppress(Exception):
                loop.remove_writer(sock.fileno())
            self._writing = False
        sock.close()

    async def stop(self, *, leave: bool = True, timeout: float = 5.0) -> None:
        """Ask the child to withdraw (and leave the membership) and wait for it to exit."""
        if self._stopping:
            return
        self._stopping = True
        self.send({"t": "stop", "leave": leave})
        proc = self.proc
        if proc is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout)
            except TimeoutError:
                log.warning("the fast path process did not stop within %.1f s: killing it", timeout)
                await self._kill()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close_channel()

    async def _kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait)

    async def _keepalive(self) -> None:
        while True:
            self.send({"t": "keepalive"})
            await asyncio.sleep(KEEPALIVE)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None or self._closed:
            return
        reason: str | None = None
        try:
            data = sock.recv(256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            data, reason = b"", f"channel error: {err}"
        if not data:
            self._lost(reason or "closed the channel")
            return
        try:
            messages = self._decoder.feed(data)
        except ChannelError as err:
            self._lost(f"sent a bad frame: {err}")
            return
        for message in messages:
            try:
                self._dispatch(message)
            except Exception:  # a bug in a handler must not stop the channel
                log.exception("fast path process: cannot handle %r", message.get("t"))

    def _lost(self, reason: str) -> None:
        self._close_channel()
        code = self.proc.poll() if self.proc is not None else None
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(RuntimeError(f"the fast path process {reason} before it was ready"))
        if not self._stopping:
            text = f"the fast path process {reason} (exit code {code})"
            log.error("%s", text)
            if self.on_lost is not None:
                self.on_lost(text)

    def _dispatch(self, message: Message) -> None:
        kind = message["t"]
        if kind == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result([str(i) for i in message["ifaces"]])
        elif kind == "error":
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(RuntimeError(f"fast path process: {message['error']}"))
            else:
                log.error("fast path process: %s", message["error"])
        elif kind == "view":
            self.view_seq = int(message["seq"])
            if self.membership is not None:
                self.membership.update(message)
        elif kind == "released":
            self.responder.on_released()
        elif kind == "ifaces":
            self.responder.interface_names = frozenset(str(i) for i in message["ifaces"])
        elif kind == "bfd_down":
            self.bfd.down(int(message["id"]), str(message["reason"]))
        elif kind == "metrics":
            self.rejected = {str(k): int(v) for k, v in message["rejected"].items()}
            self.stalls = int(message.get("stalls", 0))
            if self.metrics is not None:
                if "layer2_changes" in message:  # only the series that moved since the last report
                    self.metrics.layer2.update(message["layer2_changes"])
                else:
                    self.metrics.layer2.load(message["layer2"])
                self.metrics.bfd.load(message["bfd"])
                if "standin" in message:
                    self.metrics.standin.load(message["standin"])
            # Last: a histogram the channel garbled (ValueError, logged by the reader) costs only itself.
            if "detections" in message:
                self.detections = Histogram.from_snapshot(message["detections"])
            if "loop_lag" in message:
                self.loop_lag = Histogram.from_snapshot(message["loop_lag"])
        else:
            log.warning("fast path process sent an unknown message %r", kind)


class RemoteResponder:
    """The responder as the :class:`ironlb.announce.Announcer` sees it; the real one runs in the fast process."""

    def __init__(self, process: FastProcess) -> None:
        self._process = process
        self.interface_names: frozenset[str] = frozenset()
        """Interfaces with responders in the fast process (as it last reported)."""
        self._released: asyncio.Event | None = None
        self._sent: dict[str, tuple[str, ...]] = {}  # the decision the fast process holds: ip -> interfaces
        self._handing: frozenset[str] = frozenset()  # and its hand-overs

    async def start(self) -> None:
        """The fast process starts its responders itself."""

    async def close(self) -> None:
        """The fast process closes its responders when it stops."""

    def set_announced(
        self,
        announced: Mapping[IPv4Address | IPv6Address | str, Iterable[str] | AllInterfaces],
        hand_over: Iterable[IPv4Address | IPv6Address | str] = (),
    ) -> None:
        """Send the decision, tagged with the membership view it was made from (see :mod:`.guard`).

        Only what changed since the previous decision goes over the channel (IPs set or dropped, hand-overs
        added or dropped): with 10,000 Services a decision is a few entries, not the whole set each time. The
        channel is an ordered stream to one child for the life of both, so the child's copy stays the same.
        """
        process = self._process
        membership = process.membership
        alive = sorted(membership.view.alive) if membership is not None else []
        layer2 = {
            str(ip): (() if isinstance(ifs, AllInterfaces) else tuple(sorted(ifs))) for ip, ifs in announced.items()
        }
        handing = frozenset(str(ip) for ip in hand_over)
        changed = dict(layer2.items() - self._sent.items())
        dropped = self._sent.keys() - layer2.keys()
        process.send({
            "t": "announce", "set": {ip: list(ifs) for ip, ifs in changed.items()}, "drop": sorted(dropped),
            "hand_over_add": sorted(handing - self._handing), "hand_over_drop": sorted(self._handing - handing),
            "view_seq": process.view_seq, "alive": alive, "at": time.monotonic(),
        })  # fmt: skip
        self._sent, self._handing = layer2, handing

    def release(self, hand_over: Iterable[IPv4Address | IPv6Address | str], timeout: float | None = None) -> None:
        """A clean stop: the fast process answers ``hand_over`` until the new owners claim them, nothing else."""
        self._released = asyncio.Event()
        self._process.send({"t": "release", "hand_over": sorted(str(ip) for ip in hand_over), "timeout": timeout})

    async def released(self) -> None:
        """Return once the fast process has handed every IP over (or it is gone)."""
        event = self._released
        if event is None:
            return
        process = self._process
        while not event.is_set() and process.proc is not None and process.proc.poll() is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 0.5)

    def on_released(self) -> None:
        if self._released is not None:
            self._released.set()


class RemoteMembership:
    """The membership as ``ironlb run`` sees it: :attr:`view` is what the fast process last reported."""

    def __init__(
        self,
        process: FastProcess,
        node: str,
        secret: bytes,
        members: Mapping[str, tuple[str, int]],
        config: MembershipConfig,
        *,
        bind: tuple[str, int] | None = None,
        on_change: Callable[[frozenset[str], bool], None] | None = None,
    ) -> None:
        self._process = process
        self._params: dict[str, Any] = {
            "t": "membership", "node": node, "secret": secret.hex(), "bind": list(bind) if bind else None,
            "members": {k: list(v) for k, v in members.items()}, "config": asdict(config),
        }  # fmt: skip
        self._on_change = on_change
        # As MembershipService's: the peers (this node is not listed), nobody alive yet but this node.
        self.view = MembershipView(frozenset({node}), False, False, {k: v for k, v in members.items() if k != node})
        process.membership = self

    async def start(self) -> None:
        self._process.send(self._params)

    async def stop(self, *, leave: bool = True) -> None:
        self._process.send({"t": "leave", "leave": leave})

    async def restart_leave(self, seconds: float, stand_in: Mapping[str, Iterable[str]]) -> None:
        """Leave for a restart: the others keep this node's IPs in place for up to ``seconds``; each member in
        ``stand_in`` answers for its IPs with this node's MACs meanwhile (``ironlb.membership.hold``)."""
        hold = {"seconds": seconds, "stand_in": {name: sorted(ips) for name, ips in stand_in.items()}}
        self._process.send({"t": "leave", "leave": True, "hold": hold})

    def set_members(self, members: Mapping[str, tuple[str, int]]) -> None:
        self._process.send({"t": "members", "members": {k: list(v) for k, v in members.items()}})

    def rejections(self) -> dict[str, int]:
        return dict(self._process.rejected)

    @property
    def stalls(self) -> int:
        """Late ticks the fast process's membership treated as local stalls (as ``Membership.stalls``)."""
        return self._process.stalls

    @property
    def detections(self) -> Histogram:
        """The fast process's membership's failure detection times (as ``Membership.detections``)."""
        return self._process.detections

    def update(self, message: Message) -> None:
        members = {str(k): (str(v[0]), int(v[1])) for k, v in message["members"].items()}
        view = MembershipView(
            frozenset(message["alive"]), bool(message["quorum"]), bool(message["settled"]), members,
            frozenset(str(name) for name in message.get("held", ())),
            {str(k): frozenset(str(ip) for ip in v) for k, v in (message.get("standing_in") or {}).items()},
            unlisted={str(k): (str(v[0]), int(v[1])) for k, v in (message.get("unlisted") or {}).items()},
            kept={str(k): frozenset(str(ip) for ip in v) for k, v in (message.get("kept") or {}).items()},
            pending=frozenset(str(name) for name in message.get("pending", ())),
        )  # fmt: skip
        changed = (view.alive, view.has_quorum, view.settled, view.held, view.standing_in, view.pending) != (
            self.view.alive, self.view.has_quorum, self.view.settled, self.view.held, self.view.standing_in,
            self.view.pending,
        ) or (view.members, view.unlisted, view.kept) != (
            self.view.members, self.view.unlisted, self.view.kept,
        )  # fmt: skip
        self.view = view
        if changed and self._on_change is not None:
            self._on_change(view.alive, view.has_quorum)


class _Handle:
    def __init__(self, bfd: RemoteBFD, ident: int) -> None:
        self._bfd, self._id = bfd, ident

    async def close(self) -> None:
        self._bfd.remove(self._id)


class RemoteBFD:
    """A ``bfd_factory`` for the BGP speaker whose BFD sessions run in the fast process."""

    def __init__(self, process: FastProcess) -> None:
        self._process = process
        self._ids = itertools.count(1)
        self._on_down: dict[int, Callable[[str], None]] = {}

    def __call__(self, request: Any) -> _Handle:
        ident = next(self._ids)
        self._on_down[ident] = request.on_down
        config = request.config
        source = config.source_address
        profile: BFDProfile = request.profile
        self._process.send({
            "t": "bfd_add", "id": ident, "peer": str(config.peer_address),
            "source": str(source) if source is not None else None, "multihop": bool(request.multihop),
            "profile": asdict(profile),
        })  # fmt: skip
        return _Handle(self, ident)

    def remove(self, ident: int) -> None:
        if self._on_down.pop(ident, None) is not None:
            self._process.send({"t": "bfd_remove", "id": ident})

    def down(self, ident: int, reason: str) -> None:
        on_down = self._on_down.get(ident)
        if on_down is not None:
            on_down(reason)
