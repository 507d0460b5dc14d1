"""The fast process: membership, the ARP/NDP responders and BFD, fed by the heavy side over a socket.

Started by :class:`ironlb.fastproc.parent.FastProcess` as ``python -m ironlb.fastproc.child --fd N``. It imports
none of the heavy code (no YAML, no planner, no Kubernetes client), so its heap stays small and its garbage
collections short, and it shares no GIL with the heavy side. What it answers for is :class:`.guard.Guard`'s
output; what it sends back (membership views, interface names, BFD down, metric counts) is state, coalesced by
key, so a stopped or wedged heavy side that does not read costs it a bounded amount of memory and never blocks it.
See ``docs/fastpath.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections import Counter
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from ironlb.bfd.metrics import BFDMetrics
from ironlb.fastproc.channel import ChannelError, Decoder, Message, encode
from ironlb.fastproc.guard import Guard, GuardConfig
from ironlb.fastproc.holds import RestartHolds, hold_offer
from ironlb.fastproc.realtime import go_realtime
from ironlb.histogram import DETECTION_BUCKETS, LOOP_LAG_BUCKETS, Histogram
from ironlb.layer2 import ALL, Responder
from ironlb.layer2.metrics import Layer2Metrics
from ironlb.layer2.standin_metrics import StandInMetrics
from ironlb.membership import HoldOffer, Membership, MembershipConfig, MembershipService

if TYPE_CHECKING:
    from ironlb.bfd.service import BFDManager
    from ironlb.bfd.speaker import SpeakerBFD, SpeakerBFDHandle

log = logging.getLogger(__name__)

NICE = -10
"""Nice value asked for the fast process (needs CAP_SYS_NICE, else it keeps its parent's)."""
METRICS_INTERVAL = 1.0
READ_SIZE = 256 * 1024
LAG_PROBE_INTERVAL = 0.1
"""Seconds between the loop-lag probe's timers (``ironlb_fastpath_loop_lag_seconds``)."""
BIND_RETRY = 5.0
"""Seconds the membership socket's bind is retried (the port of a previous fast process being released)."""
LOG_CHANGES = 100
"""A decision changing at least this many IPs is logged with its timings (a take-over, a configuration change)."""


class FastChild:
    """One fast process: reads the heavy side's messages, runs the latency-critical work, reports back."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._decoder = Decoder()
        self._pending: dict[str, Message] = {}  # outgoing, latest per key
        self._outbuf = bytearray()
        self._writing = False
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        self._wake = asyncio.Event()
        self._l2metrics = Layer2Metrics(None)
        self._bfdmetrics = BFDMetrics(None)
        self._standin_metrics = StandInMetrics(None)
        self._holds = RestartHolds(self._standin_metrics, lambda: self.responder, lambda: self.membership)
        self.responder: Responder | None = None
        # BFD sessions (and their modules, ~15 ms of CPU at every start) come with the first BFD request: most
        # nodes have none, and the responder must be ready first.
        self.bfd: BFDManager | None = None
        self._bfd_glue: SpeakerBFD | None = None
        self._bfd: dict[int, SpeakerBFDHandle] = {}
        self.guard = Guard(GuardConfig(), time.monotonic(), membership=False)
        self.membership: MembershipService | None = None
        self._ml_params: dict[str, Any] | None = None
        self._view_seq = 0
        self._answering: dict[str, tuple[str, ...]] = {}
        self._ifaces: frozenset[str] | None = None
        self._leave_on_exit = True
        self._leave_hold: HoldOffer | None = None  # a restart: the LEAVE asks the others to hold (hold.py)
        self._decided: dict[str, tuple[str, ...]] = {}  # the heavy side's last decision (it sends what changes)
        self._hand_over: set[str] = set()  # IPs given to another live node: answered until it claims them
        self._releasing = False  # a clean stop is handing the IPs over: the guard no longer drives the responder
        # Membership counts of the memberships stopped so far (a wedge restarts it): the reported ones only grow.
        self._past_rejected: Counter[str] = Counter()
        self._past_stalls = 0
        self._past_detections = Histogram(DETECTION_BUCKETS)
        self._loop_lag = Histogram(LOOP_LAG_BUCKETS)
        self._membership_off = asyncio.Event()  # no membership ticks to report the loop's lag: the probe does
        self._membership_off.set()

    # ------------------------------------------------------------------ main
    async def run(self) -> None:
        self._sock.setblocking(False)
        self._loop.add_reader(self._sock.fileno(), self._on_readable)
        ticker = self._loop.create_task(self._tick_loop(), name="fastproc-tick")
        probe = self._loop.create_task(self._lag_probe(), name="fastproc-lag")
        try:
            await self._done.wait()
        finally:
            for task in (ticker, probe):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._close()

    async def _lag_probe(self) -> None:
        """How late this loop runs a timer: the wait an ARP/NDP request or a heartbeat meets before it is handled
        (the loop's own lateness: this process's CPU share, its other work, a garbage collection).

        While the membership runs, its ticks (a timer every heartbeat interval) report their lateness instead
        (``on_late``): a timer of its own would wake the process ten more times a second for the same figure.
        """
        while True:
            await self._membership_off.wait()
            due = time.monotonic() + LAG_PROBE_INTERVAL
            await asyncio.sleep(LAG_PROBE_INTERVAL)
            if self._membership_off.is_set():
                self._loop_lag.observe(time.monotonic() - due)

    async def _tick_loop(self) -> None:
        last_metrics = 0.0
        while True:
            now = time.monotonic()
            if self.guard.wedged(now):
                log.error(
                    "the heavy side has not spoken for %.1f s: wedged; withdrawing and leaving the membership "
                    "until it speaks again", self.guard.config.wedge_timeout,
                )  # fmt: skip
                await self._stop_membership(leave=True)
            self._apply(now)
            if now - last_metrics >= METRICS_INTERVAL:
                last_metrics = now
                self._report_metrics()
            self._report_ifaces()
            delay = min(self.guard.next_deadline(now) - now, METRICS_INTERVAL)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.01)):
                    await self._wake.wait()

    async def _close(self) -> None:
        """Withdraw everything; leave the membership so the others take over at once."""
        if self.responder is not None:
            with contextlib.suppress(Exception):
                self.responder.set_announced({})
        await self._stop_membership(leave=self._leave_on_exit)
        for handle in list(self._bfd.values()):
            with contextlib.suppress(Exception):
                await handle.close()
        self._bfd.clear()
        if self.bfd is not None:
            with contextlib.suppress(Exception):
                self.bfd.close()
        if self.responder is not None:
            with contextlib.suppress(Exception):
                await self.responder.close()
        self._flush_blocking()

    # ------------------------------------------------------------------ input
    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            log.error("fast path channel: %s; the heavy side is gone: withdrawing", err)
            data = b""
        if not data:
            log.warning("the heavy side closed the channel: withdrawing and leaving the membership")
            self._loop.remove_reader(self._sock.fileno())
            self._done.set()
            return
        try:
            messages = self._decoder.feed(data)
        except ChannelError as err:
            log.error("fast path channel: %s; withdrawing", err)
            self._loop.remove_reader(self._sock.fileno())
            self._done.set()
            return
        now = time.monotonic()
        for message in messages:
            if self.guard.heard(now):
                log.warning("the heavy side speaks again: rejoining the membership")
                self._loop.create_task(self._rejoin())
            try:
                self._handle(message, now)
            except Exception:  # a message this side cannot use: report it, keep the fast path running
                log.exception("fast path: cannot handle %r", message.get("t"))
        self._wake.set()

    def _handle(self, message: Message, now: float) -> None:
        kind = message["t"]
        if kind == "keepalive":
            return
        if kind == "start":
            self._start(message)
        elif kind == "announce":
            self._announce(message, now)
        elif kind == "release":
            self._release(message)
        elif kind == "membership":
            self._ml_params = message
            self._loop.create_task(self._start_membership())
        elif kind == "members":
            members = {str(k): (str(v[0]), int(v[1])) for k, v in message["members"].items()}
            if self._ml_params is not None:
                self._ml_params["members"] = {k: list(v) for k, v in members.items()}
            if self.membership is not None:
                self.membership.set_members(members)
        elif kind == "leave":
            self._ml_params = None
            # Kept for the stop that may follow at once (it must not send a plain LEAVE before this task runs).
            spec = message.get("hold")
            self._leave_hold = hold_offer(self.responder, spec["seconds"], spec["stand_in"]) if spec else None
            self._loop.create_task(self._stop_membership(leave=bool(message.get("leave", True))))
        elif kind == "bfd_add":
            self._bfd_add(message)
        elif kind == "bfd_remove":
            handle = self._bfd.pop(int(message["id"]), None)
            if handle is not None:
                self._loop.create_task(handle.close())
        elif kind == "stop":
            self._leave_on_exit = bool(message.get("leave", True))
            self._done.set()
        else:
            log.warning("fast path: unknown message %r", kind)

    def _announce(self, message: Message, now: float) -> None:
        """A decision: the whole set (``layer2``, ``hand_over``) or what changed since the previous one."""
        if "layer2" in message:
            self._decided = {str(ip): tuple(str(i) for i in ifs) for ip, ifs in message["layer2"].items()}
            self._hand_over = {str(ip) for ip in message.get("hand_over", ())}
        else:
            for ip in message["drop"]:
                self._decided.pop(str(ip), None)
            self._decided.update((str(ip), tuple(str(i) for i in ifs)) for ip, ifs in message["set"].items())
            self._hand_over.difference_update(str(ip) for ip in message["hand_over_drop"])
            self._hand_over.update(str(ip) for ip in message["hand_over_add"])
        self.guard.decided(self._decided, int(message["view_seq"]), frozenset(message["alive"]), now)
        self._apply(now, force=True)
        changed = len(message["set"]) + len(message["drop"]) if "set" in message else len(self._decided)
        if changed >= LOG_CHANGES:  # a take-over's steps, for the failover benchmarks (the clock is the machine's)
            sent = message.get("at")
            log.info("decision of %d IPs (%d changed) applied %.1f ms after it was sent, in %.1f ms",
                     len(self._decided), changed, (now - sent) * 1000 if isinstance(sent, float) else -1.0,
                     (time.monotonic() - now) * 1000)  # fmt: skip

    def _start(self, message: Message) -> None:
        self.guard = Guard(GuardConfig(**message["guard"]), time.monotonic(), membership=False)
        options = message["responder"]
        self.responder = Responder(
            exclude=tuple(options["exclude"]),
            rescan_interval=float(options["rescan_interval"]),
            gratuitous_interval=float(options["gratuitous_interval"]),
            gratuitous_duration=float(options["gratuitous_duration"]),
            handover_timeout=float(options["handover_timeout"]),
            metrics=self._l2metrics,
            on_unreachable=self._holds.on_unreachable,
            standin_metrics=self._standin_metrics,
        )
        self._loop.create_task(self._start_responder())

    async def _start_responder(self) -> None:
        assert self.responder is not None
        try:
            await self.responder.start()
        except Exception as err:
            log.exception("fast path: cannot start the responders")
            self._send("error", {"t": "error", "error": f"{type(err).__name__}: {err}"})
            self._done.set()
            return
        self._send("ready", {"t": "ready", "ifaces": sorted(self.responder.interface_names)})

    # ------------------------------------------------------------------ membership
    def _core(self) -> Membership:
        p = self._ml_params
        assert p is not None
        members = {str(k): (str(v[0]), int(v[1])) for k, v in p["members"].items()}
        return Membership(str(p["node"]), bytes.fromhex(p["secret"]), members, MembershipConfig(**p["config"]))

    async def _start_membership(self) -> None:
        if self.membership is not None or self._ml_params is None:
            return
        bind = self._ml_params.get("bind")
        service = MembershipService(
            self._core(),
            bind=(str(bind[0]), int(bind[1])) if bind else None,
            on_change=lambda alive, quorum: self._on_view(),
            on_late=self._loop_lag.observe,
            on_event=self._holds.on_event,
        )
        self.guard.membership_started()
        deadline = time.monotonic() + BIND_RETRY
        while True:
            try:
                await service.start()
                break
            except OSError as err:
                # A fast process of this node's previous life may still hold the port for a moment.
                if time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    continue
                log.error("fast path: cannot start the membership: %s", err)
                self._send("error", {"t": "error", "error": f"membership: {err}"})
                self._done.set()
                return
        self.membership = service
        self._membership_off.clear()
        self._on_view()

    async def _stop_membership(self, *, leave: bool) -> None:
        service, self.membership = self.membership, None
        hold, self._leave_hold = self._leave_hold, None
        self._membership_off.set()
        if service is not None:
            if hold is not None:
                log.info("restarting: asking the others to hold this node's IPs for up to %.1f s", hold.seconds)
            self._past_rejected += service.rejections()
            self._past_stalls += service.membership.stalls
            self._past_detections.merge(service.membership.detections)
            with contextlib.suppress(Exception):
                await service.stop(leave=leave, hold=hold)

    async def _rejoin(self) -> None:
        self.guard.rejoined(self._view_seq + 1)
        await self._start_membership()

    def _on_view(self) -> None:
        service = self.membership
        if service is None:
            return
        view = service.view
        self._holds.on_quorum(view.has_quorum)
        self._view_seq += 1
        self.guard.view(self._view_seq, view.alive, view.has_quorum and view.settled, time.monotonic())
        self._send("view", {
            "t": "view", "seq": self._view_seq, "alive": sorted(view.alive), "quorum": view.has_quorum,
            "settled": view.settled, "members": {k: list(v) for k, v in view.members.items()},
            "held": sorted(view.held),
            "standing_in": {name: sorted(ips) for name, ips in view.standing_in.items()},
            "pending": sorted(view.pending),
            "unlisted": {name: list(address) for name, address in view.unlisted.items()},
            "kept": {name: sorted(ips) for name, ips in view.kept.items()},
        })  # fmt: skip
        self._apply(time.monotonic())
        self._wake.set()

    # ------------------------------------------------------------------ BFD
    def _bfd_add(self, message: Message) -> None:
        ident = int(message["id"])
        source = message.get("source")

        def on_down(reason: str) -> None:
            self._send(f"bfd_down/{ident}", {"t": "bfd_down", "id": ident, "reason": reason})

        from ironlb.bfd.speaker import Addresses, Request
        from ironlb.config.bfdprofile import BFDProfile

        request = Request(
            BFDProfile.from_dict(message["profile"]),
            Addresses(ip_address(message["peer"]), ip_address(source) if source else None),
            bool(message["multihop"]),
            on_down,
        )
        self._bfd[ident] = self._bfd_factory()(request)

    def _bfd_factory(self) -> SpeakerBFD:
        """The BFD manager and its glue, created (and bound to this loop) at the first request."""
        if self._bfd_glue is None:
            from ironlb.bfd.service import BFDManager
            from ironlb.bfd.speaker import SpeakerBFD

            self.bfd = BFDManager(metrics=self._bfdmetrics)
            self.bfd.bind(self._loop)
            self._bfd_glue = SpeakerBFD(self.bfd)
        return self._bfd_glue

    # ------------------------------------------------------------------ output
    def _apply(self, now: float, *, force: bool = False) -> None:
        """Answer what the guard allows; a new decision (``force``) also brings its hand-over list."""
        if self.responder is None or self._releasing:
            return
        wanted = self.guard.answering(now)
        if wanted == self._answering and not force:
            return
        self._answering = wanted
        # Hand-overs go only with the decision they came with: when the guard holds back, nothing is handed over.
        hand_over = self._hand_over if wanted == self.guard.decision else ()
        self.responder.set_announced({ip: (list(ifs) if ifs else ALL) for ip, ifs in wanted.items()}, hand_over)

    def _release(self, message: Message) -> None:
        """A clean stop: hand the IPs over (answer them until claimed), then say so."""
        if self.responder is None:
            self._send("released", {"t": "released"})
            return
        self._releasing = True
        timeout = message.get("timeout")
        self.responder.release([str(ip) for ip in message["hand_over"]], None if timeout is None else float(timeout))
        responder = self.responder

        async def wait() -> None:
            await responder.released()
            self._send("released", {"t": "released"})

        self._loop.create_task(wait())

    def _report_ifaces(self) -> None:
        if self.responder is None:
            return
        names = self.responder.interface_names
        if names != self._ifaces:
            self._ifaces = names
            self._send("ifaces", {"t": "ifaces", "ifaces": sorted(names)})

    def _report_metrics(self) -> None:
        service = self.membership
        rejected = self._past_rejected.copy()
        stalls, detections = self._past_stalls, self._past_detections.copy()
        if service is not None:
            rejected += service.rejections()
            stalls += service.membership.stalls
            detections.merge(service.membership.detections)
        if self.responder is not None:
            self.responder.count_stand_ins()
        self._send("metrics", {
            "t": "metrics", "layer2_changes": self._l2metrics.take_changes(), "bfd": self._bfdmetrics.snapshot(),
            "rejected": dict(rejected), "stalls": stalls, "detections": detections.snapshot(),
            "loop_lag": self._loop_lag.snapshot(), "answering": len(self._answering),
            "standin": self._standin_metrics.snapshot(),
        })  # fmt: skip

    def _send(self, key: str, message: Message) -> None:
        """Queue ``message`` under ``key`` (replacing an unsent one with the same key) and write what fits."""
        self._pending.pop(key, None)
        self._pending[key] = message
        self._flush()

    def _flush(self) -> None:
        while True:
            if not self._outbuf:
                if not self._pending:
                    break
                key = next(iter(self._pending))
                self._outbuf += encode(self._pending.pop(key))
            try:
                sent = self._sock.send(self._outbuf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:  # the heavy side is gone; the reader sees it too
                self._outbuf.clear()
                self._pending.clear()
                break
            del self._outbuf[:sent]
            if self._outbuf:
                break
        want = bool(self._outbuf)
        if want != self._writing:
            self._writing = want
            if want:
                self._loop.add_writer(self._sock.fileno(), self._flush)
            else:
                self._loop.remove_writer(self._sock.fileno())

    def _flush_blocking(self, timeout: float = 1.0) -> None:
        """At exit: hand over what is queued if the heavy side reads within ``timeout``."""
        if self._writing:
            with contextlib.suppress(Exception):
                self._loop.remove_writer(self._sock.fileno())
            self._writing = False
        end = time.monotonic() + timeout
        while (self._outbuf or self._pending) and time.monotonic() < end:
            before = len(self._outbuf) + len(self._pending)
            self._flush()
            if len(self._outbuf) + len(self._pending) == before:
                time.sleep(0.01)
            if self._writing:
                self._loop.remove_writer(self._sock.fileno())
                self._writing = False


def parse_args(argv: list[str]) -> tuple[int, str]:
    """``--fd N [--log-level L]`` (also ``--opt=value``), as :mod:`ironlb.fastproc.spawn` passes them: the channel's
    file descriptor and the log level. Parsed by hand: argparse's import is ~5 ms of CPU at every start, for two
    options only ironlb passes. Anything else exits 2 with a message on stderr, as argparse did."""
    values: dict[str, str] = {"--log-level": "info"}
    rest = list(argv)
    error = ""
    while rest and not error:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if name not in ("--fd", "--log-level"):
            error = f"unrecognized argument: {arg[:100]!r}"
        elif not eq and not rest:
            error = f"argument {name}: expected one argument"
        else:
            values[name] = value if eq else rest.pop(0)
    if not error and "--fd" not in values:
        error = "the following arguments are required: --fd"
    if not error and not values["--fd"].strip().isdigit():
        error = f"argument --fd: invalid int value: {values['--fd'][:100]!r}"
    if error:
        print(f"usage: ironlb-fastpath --fd FD [--log-level LEVEL]\nironlb-fastpath: error: {error}", file=sys.stderr)
        raise SystemExit(2)
    return int(values["--fd"]), values["--log-level"]


def main(argv: list[str] | None = None) -> int:
    fd, log_level = parse_args(sys.argv[1:] if argv is None else argv)
    levels = {"all": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "error": logging.ERROR, "none": logging.CRITICAL + 1}  # fmt: skip
    logging.basicConfig(level=levels.get(log_level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
    # The heavy side decides when this process stops (a message, or closing the channel): a terminal's SIGINT
    # to the process group must not take the fast path down before the heavy side has withdrawn.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    gc.collect()
    gc.freeze()
    log.info("fast path: %s", go_realtime())  # run at once when woken, not behind busy processes

    async def run() -> None:
        loop = asyncio.get_running_loop()
        child = FastChild(sock)
        loop.add_signal_handler(signal.SIGTERM, child._done.set)
        await child.run()

    asyncio.run(run())
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
