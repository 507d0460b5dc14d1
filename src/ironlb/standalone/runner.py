"""The imperative shell of ``ironlb run``: state directory, membership and status file around ``decide``.

What the node then does on the network (responders, BGP sessions, BFD, ``metallb_speaker_announced``) is
:class:`ironlb.announce.announcer.Announcer`, shared with ``ironlb speaker``.

BGP: the BGPPeers of the state directory that select this node get one session each (:class:`BGPSpeaker`), fed
with ``decide``'s per-peer route tables on every recompute, whatever the membership quorum (see ``decide``). On
SIGTERM, sessions that negotiated graceful restart are closed without NOTIFICATION so the routers keep the
routes while ironlb restarts; the others get a cease.

Threads: membership, the ARP/NDP responders and BFD run on the fast path (:class:`ironlb.fastpath.FastPath`,
their own thread and loop); reading the state directory, validating, ``decide``, BGP and the status file run on
the main loop. The main loop hands the fast path the announced set; membership changes come back as
``_on_membership`` calls on the main loop. See ``docs/fastpath.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironlb.announce.build import build_announcer
from ironlb.bgp.speaker import BFDFactory, BGPSpeaker
from ironlb.config import ConfigError, Resources, load_texts
from ironlb.config.reading import ReadLimits
from ironlb.decide import handed_over, stand_ins
from ironlb.fastproc.guard import GuardConfig
from ironlb.fastproc.parent import FastProcess, RemoteMembership
from ironlb.fastproc.spawn import Spawned
from ironlb.layer2.interfaces import DEFAULT_EXCLUDE_PATTERNS
from ironlb.membership.config import MembershipConfig
from ironlb.membership.quorum import successors_have_quorum
from ironlb.membership.wire import member_list_key
from ironlb.metrics.export import DEFAULT_REGISTRY, register, unregister
from ironlb.metrics.membership import FastPathCollector
from ironlb.metrics.server import HealthServer
from ironlb.plan import Snapshot, snapshot_from, with_objects
from ironlb.runtime import age_text
from ironlb.standalone import lastvalid, statedir
from ironlb.standalone.decide import Allocation, Decision, Early, decide_early

if TYPE_CHECKING:
    from ironlb.layer2.responder import Responder
    from ironlb.membership.fsm import Membership
    from ironlb.membership.service import MembershipService

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass
class RunOptions:
    state_dir: Path
    node: str
    members: Mapping[str, Address] = field(default_factory=dict)
    secret: bytes | None = None  # membership HMAC key; required with other members unless insecure_no_secret
    insecure_no_secret: bool = False  # without a secret: a key from the member list, authenticating nothing
    status_file: Path | None = None
    namespace: str = "metallb-system"
    lb_class: str = ""
    ignore_exclude_lb: bool = False
    poll_interval: float = 0.05
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    exclude_interfaces: tuple[str, ...] = DEFAULT_EXCLUDE_PATTERNS
    gratuitous_interval: float = 1.1
    gratuitous_duration: float = 5.0
    handover_timeout: float = 2.0  # an IP given away is answered until the new owner claims it, at most this long
    restart_hold: float = 0.0  # > 0: a SIGTERM is a restart; the others hold this node's IPs in place that long
    rescan_interval: float = 10.0
    metrics_address: tuple[str, int] | None = None  # /metrics, /healthz, /readyz; None: not served
    fastpath_thread: bool = True  # False: membership and responders share the main loop (unit tests)
    fastpath_process: bool = False  # True: they run in a process of their own (ironlb run's default)
    guard: GuardConfig = field(default_factory=GuardConfig)  # the fast process's rules (wedge timeout, join grace)
    log_level: str = "info"  # the fast process's
    test_stall: float = 0.0  # test hook: SIGUSR1 makes the main loop busy for this many seconds (0: off)
    read_limits: ReadLimits = field(default_factory=ReadLimits)  # state directory file sizes and count
    data_dir: Path | None = None  # where the last valid configuration is saved for a restart; None: not saved


@dataclass(frozen=True)
class _Loaded:
    """What one read of the state directory gave: a snapshot to use (if any), warnings, the error (if any)."""

    snapshot: Snapshot | None
    warnings: tuple[str, ...]
    error: ConfigError | None
    restored: str | None = None  # the snapshot is the saved last valid configuration: from where, when


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Readers never see a half-written status: write a temporary file, then rename it over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Runner:
    """One node of a standalone ironlb cluster."""

    def __init__(
        self,
        options: RunOptions,
        *,
        responder: Responder | None = None,
        bgp: BGPSpeaker | None = None,
        bfd_factory: BFDFactory | None = None,
        fastproc_spawned: Spawned | None = None,
    ) -> None:
        if options.secret is None and not options.insecure_no_secret and set(options.members) - {options.node}:
            raise ValueError("membership with other members needs a secret (--secret-file) or --insecure-no-secret")
        self.options = options
        self.fastproc: FastProcess | None = None
        self.exit_code = 0
        self.announcer, self.fastproc = build_announcer(
            options,
            on_lost=self._on_fastpath_lost,
            threaded=options.fastpath_thread,
            spawned=fastproc_spawned,
            responder=responder,
            bgp=bgp,
            bfd_factory=bfd_factory,
            on_bgp_event=self._on_bgp_event,
        )
        self.fastpath = self.announcer.fastpath
        self.responder = self.announcer.responder
        self.bgp = self.announcer.bgp
        self._bgp_status_pending = False
        self.membership: MembershipService | RemoteMembership | None = None
        self._core: Membership | None = None
        self.snapshot: Snapshot | None = None
        self.config_error: str | None = None
        self.decision: Decision | None = None
        self._allocation = Allocation()  # reused while the snapshot is the same (membership changes)
        self._early: Early | None = None  # the last decision, which a membership change starts from
        self._held_ips: dict[str, frozenset[str]] = {}  # the restart holds of the last decision (see decide_early)
        self._announcements = 0  # how many decisions were announced (the latest one is finished)
        self._announced = False  # the first announcement was logged
        self._announced_l2 = False  # the first announcement with Layer 2 IPs was logged
        self._saved_digest: str | None = None
        self._save_failed = False
        self._running_saved: str | None = None  # what config_error adds while the saved configuration runs
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.http: HealthServer | None = None
        self._collector: FastPathCollector | None = None

    @property
    def member_names(self) -> frozenset[str]:
        return frozenset(self.options.members) | {self.options.node}

    def _alive(self) -> tuple[frozenset[str], bool]:
        """Live members and whether this node may announce.

        Until every member has been heard from (or the dead timeout has passed since start), a node does not
        announce: it would otherwise take over IPs from members whose heartbeats simply have not arrived yet.
        """
        if self.membership is None:
            return frozenset({self.options.node}), True
        view = self.membership.view  # an immutable snapshot published by the fast path
        return view.alive, view.has_quorum and view.settled

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        opts = self.options
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        if opts.test_stall > 0:
            loop.add_signal_handler(signal.SIGUSR1, self._stall, opts.test_stall)
        await self._load()
        if self.fastproc is not None:
            await self.fastproc.start()
        await self.fastpath.start()
        await self.announcer.start()
        if opts.metrics_address is not None:
            http = HealthServer(*opts.metrics_address, ready=lambda: self.decision is not None)
            try:
                await http.start()
                self.http = http
            except OSError as err:
                log.warning("cannot serve metrics on %s:%d: %s", *opts.metrics_address, err)
            else:
                # The membership and fast-path families, read at scrape time from whichever membership runs.
                self._collector = FastPathCollector(lambda: self.membership, lambda: self.fastproc)
                register(self._collector, DEFAULT_REGISTRY)
        if len(self.member_names) > 1:
            secret = opts.secret
            if secret is None:
                log.warning(
                    "--insecure-no-secret: membership packets are signed with a key derived from the member list; "
                    "anyone who knows the list can forge them and move the IPs"
                )
                secret = member_list_key(opts.members)
            if self.fastproc is not None:
                self.membership = RemoteMembership(
                    self.fastproc, opts.node, secret, dict(opts.members), opts.membership,
                    on_change=self._on_membership,
                )  # fmt: skip
                await self.membership.start()
            else:
                # Thread mode: the fast process's work on a thread, restart holds by the same code (fastproc.holds).
                # The core is imported here only: the fast process runs it otherwise (issue 16, fast start).
                from ironlb.fastproc.holds import threaded_membership
                from ironlb.membership.fsm import Membership

                self._core = Membership(opts.node, secret, dict(opts.members), opts.membership)
                service = threaded_membership(
                    self._core, self._responder(), self.announcer.metrics.standin,
                    self.fastpath.to_main(self._on_membership),
                )  # fmt: skip
                self.membership = service
                await self.fastpath.call(service.start())
        watcher = loop.create_task(self._watch_bgp_states())
        try:
            await self._recompute("start")
            await statedir.watch(
                opts.state_dir,
                self._on_state_change,
                interval=opts.poll_interval,
                stop=self._stop,
                max_entries=opts.read_limits.files,
            )
        finally:
            watcher.cancel()
            await self._shutdown()

    async def _shutdown(self) -> None:
        """Withdraw: tell the others at once (LEAVE), stop answering, and say so in the status file.

        Make before break: the IPs a successor will take are still answered after the LEAVE, until the successor
        has claimed them on the wire (its gratuitous ARP / unsolicited NA) or ``handover_timeout`` has passed.
        """
        membership = self.membership
        hold = self._stand_ins()

        async def leave() -> None:
            if isinstance(membership, RemoteMembership) and hold is not None:
                await membership.restart_leave(self.options.restart_hold, hold)
            elif membership is not None and not isinstance(membership, RemoteMembership) and hold is not None:
                await self.fastpath.call(self._restart_leave(membership, hold))
            elif membership is not None:
                await self.fastpath.call(membership.stop(leave=True))

        hand_over = self._hand_over(leaving=True) if hold is None else frozenset()
        await self.announcer.close(graceful_restart=True, hand_over=hand_over, before_silence=leave)
        await self.fastpath.stop()
        if self.fastproc is not None:
            await self.fastproc.stop(leave=True)
        if self.http is not None:
            await self.http.close()
        if self._collector is not None:
            unregister(self._collector)
            self._collector = None
        if self.decision is not None:
            self._write_status(self.decision, {}, stopped=True)
        log.info("stopped; all announcements withdrawn")

    def _on_fastpath_lost(self, why: str) -> None:
        """Without its fast path a node neither answers nor detects failures: stop (the supervisor restarts it)."""
        log.error("%s: stopping", why)
        self.exit_code = 1
        self.stop()

    def _stall(self, seconds: float) -> None:
        """Test hook: keep the main loop (and the GIL, in bursts) busy, as a huge manifest would."""
        log.warning("test hook: stalling the main loop for %.1f s", seconds)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sum(range(1000))
        log.warning("test hook: main loop stall over")

    def _on_membership(self, alive: frozenset[str], has_quorum: bool) -> None:
        log.info("members alive: %s (quorum: %s)", ",".join(sorted(alive)), has_quorum)
        task = asyncio.get_running_loop().create_task(self._recompute("membership", since=time.monotonic()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_state_change(self) -> None:
        await self._load()
        await self._recompute("state")

    async def _load(self) -> None:
        """Read the state directory; on invalid config keep the last good one and report the error.

        Services, Nodes and EndpointSlices are always taken from the directory: only the configuration falls
        back to its last valid version. A file that is not even YAML (or is refused: not a regular file, too big,
        not UTF-8) leaves everything as it was. Reading and validating run in a worker thread, and whatever they
        raise is a configuration error: nothing in the directory can stop or stall the node.
        """
        previous = self.snapshot
        try:
            loaded = await asyncio.to_thread(self._read_state, previous)
        except Exception as err:  # the contract: a bad input is reported, never fatal
            log.debug("loading the state directory failed", exc_info=True)
            loaded = _Loaded(None, (), ConfigError(f"{self.options.state_dir}: {type(err).__name__}: {err}"))
        for warning in loaded.warnings:
            log.warning("%s", warning)
        if loaded.snapshot is not None:
            self.snapshot = loaded.snapshot
        if loaded.restored is not None:
            self._running_saved = loaded.restored
        if loaded.error is None:
            self.config_error = None
            self._running_saved = None
        elif self._running_saved is not None:
            self.config_error = f"{loaded.error}\n{self._running_saved}"
            log.error("invalid configuration:\n%s", self.config_error)
        else:
            self.config_error = str(loaded.error)
            log.error("invalid configuration, keeping the last valid one:\n%s", loaded.error)

    def _read_state(self, previous: Snapshot | None) -> _Loaded:
        """Blocking (a worker thread): the new snapshot, or the error and what of the directory still applies."""
        opts = self.options
        texts: list[tuple[str, str]] = []
        try:
            resources = statedir.load(opts.state_dir, opts.namespace, opts.read_limits, texts)
        except ConfigError as err:
            return self._restore(err, None) if previous is None else _Loaded(None, (), err)
        try:
            snapshot, warnings = snapshot_from(resources, namespace=opts.namespace)
        except ConfigError as err:
            if previous is None:
                return self._restore(err, resources)
            return _Loaded(with_objects(previous.config, resources), (), err)
        self._save(texts)
        return _Loaded(snapshot, warnings, None)

    def _save(self, texts: list[tuple[str, str]]) -> None:
        """Blocking: keep a valid read for a restart (``lastvalid``), unless it is what was saved already."""
        directory = self.options.data_dir
        if directory is None:
            return
        digest = lastvalid.digest(texts)
        if digest == self._saved_digest:
            return
        try:
            lastvalid.save(directory, texts, time.time())
        except OSError as err:
            if not self._save_failed:
                log.warning("cannot save the last valid configuration in %s: %s", directory, err)
            self._save_failed = True
            return
        self._saved_digest = digest
        self._save_failed = False

    def _restore(self, error: ConfigError, resources: Resources | None) -> _Loaded:
        """Blocking: at start, with an unusable state directory, the configuration a previous run saved.

        The Services, Nodes and EndpointSlices are the directory's own when it could be read (only its
        configuration is invalid), else the saved ones. ``error`` stays the error (naming the refused file).
        """
        directory = self.options.data_dir
        if directory is None:
            return _Loaded(None, (), error)
        try:
            saved = lastvalid.load(directory, self.options.read_limits.total_bytes * 2 + 4096)
            if saved is None:
                return _Loaded(None, (), error)
            old = load_texts(saved.texts, default_namespace=self.options.namespace,
                             max_chars=max(self.options.read_limits.file_bytes, 1))  # fmt: skip
            snapshot, _ = snapshot_from(old, namespace=self.options.namespace)
        except ConfigError as err:
            return _Loaded(None, (), ConfigError([*error.messages, f"and no saved configuration to run: {err}"]))
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(saved.saved_at))
        self._saved_digest = lastvalid.digest(list(saved.texts))
        if resources is not None:
            snapshot = with_objects(snapshot.config, resources)
        return _Loaded(snapshot, (), error, f"running the last valid configuration, saved at {when} in {saved.path}")

    async def _recompute(self, why: str, *, since: float | None = None) -> None:
        """Decide and announce this node's part, then (once the lock is free again) the rest: the other speakers'
        plans and the status file. A recompute queued meanwhile (a membership change) takes the lock first
        (``asyncio.Lock`` serves in order) and announces without waiting for that rest; having announced, it
        supersedes it: only the latest announcement is finished. ``since``: when the membership change arrived
        (its announcement is logged with the time from then)."""
        async with self._lock:
            if self.snapshot is None or self._stop.is_set():
                if self.snapshot is None:
                    self._write_error_status()
                return
            started = time.monotonic()
            alive, quorum = self._alive()
            previous, self._early = self._early, None  # not reused if deciding fails half-way
            try:
                early = decide_early(
                    self.snapshot,
                    node=self.options.node,
                    members=self.member_names,
                    alive=alive,
                    has_quorum=quorum,
                    lb_class=self.options.lb_class,
                    ignore_exclude_lb=self.options.ignore_exclude_lb,
                    allocated=self._allocation.of(self.snapshot, self.options.lb_class),
                    previous=previous,
                    held=self.membership.view.held if self.membership is not None else (),
                    held_ips=self._held_ips,
                    standing_in=self.membership.view.standing_in if self.membership is not None else None,
                    pending=self.membership.view.pending if self.membership is not None else (),
                    known=self.membership.view.kept if self.membership is not None else None,
                )
            except Exception as err:  # an object shaped as no check foresaw: report it, keep the last decision
                self._planning_failed(err, alive, quorum)
                return
            # Announce on this node's own part, then plan the other speakers (for the status file only).
            await self.announcer.apply(early.announcement, self._hand_over(early, quorum=quorum))
            self._early = early
            self._held_ips = dict(early.cluster.held) if early.cluster is not None else {}
            self._announcements += 1
            announcement = self._announcements
            done = time.monotonic()
            if since is not None:  # a take-over's steps, for the failover benchmarks
                log.info("announced in %.1f ms (%s; %.1f ms after it arrived)", (done - started) * 1000, why,
                         (done - since) * 1000)  # fmt: skip
            else:
                log.debug("announced in %.1f ms (%s)", (done - started) * 1000, why)
            if not self._announced:
                self._announced = True
                bgp = early.announcement.bgp
                log.info("first announcement: %d Layer 2 IPs, %d BGP peers (%s)", len(early.announcement.layer2),
                         len(bgp.peers) if bgp else 0, age_text())  # fmt: skip
            if not self._announced_l2 and early.announcement.layer2:
                # Layer 2 waits for the membership to settle (docs/membership.md, "Joining"): when that was.
                self._announced_l2 = True
                log.info("first Layer 2 announcement: %d IPs (%s)", len(early.announcement.layer2), age_text())
        async with self._lock:
            if self._announcements != announcement:
                return  # a later announcement came first: it finishes its own
            try:
                decision = early.finish()
            except Exception as err:  # as above (the announcement stands)
                self._planning_failed(err, alive, quorum)
                return
            self.decision = decision
            self._write_status(decision, decision.layer2, alive=alive, quorum=quorum)
            log.debug("recomputed in %.1f ms (%s)", (time.monotonic() - started) * 1000, why)

    def _planning_failed(self, err: Exception, alive: frozenset[str], quorum: bool) -> None:
        log.debug("planning failed", exc_info=True)
        self.config_error = f"{self.options.state_dir}: cannot plan: {type(err).__name__}: {err}"
        log.error("%s; keeping the last decision", self.config_error)
        if self.decision is not None:
            self._write_status(self.decision, self.decision.layer2, alive=alive, quorum=quorum)
        else:
            self._write_error_status()

    async def _restart_leave(self, membership: MembershipService, stand_in: Mapping[str, list[str]]) -> None:
        """Thread mode's restart (on the fast loop): the hold LEAVE, as the fast process sends it."""
        from ironlb.fastproc.holds import hold_offer

        offer = hold_offer(self._responder(), self.options.restart_hold, stand_in)
        log.info("restarting: asking the others to hold this node's IPs for up to %.1f s", offer.seconds)
        await membership.stop(leave=True, hold=offer)

    def _responder(self) -> Responder | None:
        """Thread mode's responder (the announcer's, on the fast path); None with the fast process."""
        from ironlb.layer2.responder import Responder

        responder = self.announcer.responder
        return responder if isinstance(responder, Responder) else None

    def _stand_ins(self) -> dict[str, list[str]] | None:
        """With ``--restart-hold``: a stop is a restart, nothing moves; per member the IPs it stands in for
        (``decide.stand_ins``). None: a plain stop that hands the IPs over."""
        if self.options.restart_hold <= 0 or self.membership is None:
            return None
        if self.decision is None or not self._alive()[1]:
            return None
        alive = self.membership.view.alive
        return stand_ins(self.options.node, self.decision.layer2_by_service, self.decision.ingress, alive)

    def _hand_over(
        self, decision: Decision | Early | None = None, *, quorum: bool | None = None, leaving: bool = False
    ) -> frozenset[str]:
        """The IPs to hand over rather than drop (see ``handed_over``); none without quorum (withdraw at once)."""
        decision = decision or self.decision
        if quorum is None:
            quorum = self._alive()[1]
        if decision is None or not quorum or self.membership is None:
            return frozenset()
        view = self.membership.view
        if leaving and not successors_have_quorum(self.options.membership.quorum, view.alive, len(view.members),
                                                  self.options.node):  # fmt: skip
            return frozenset()  # the others lose quorum when this node leaves: nobody will take the IPs
        return handed_over(self.options.node, decision.layer2_by_service, decision.ingress, leaving=leaving)

    def _on_bgp_event(self, peer: str, event: object) -> None:
        """A session changed state: rewrite the status soon (coalescing bursts of events)."""
        if self._bgp_status_pending or self.options.status_file is None:
            return
        self._bgp_status_pending = True
        asyncio.get_running_loop().call_later(0.05, self._write_bgp_status)

    async def _watch_bgp_states(self, interval: float = 0.5) -> None:
        """Dial failures and retries are not FSM events: refresh the status when a session state changes."""
        last: list[dict[str, str]] = []
        while not self._stop.is_set():
            await asyncio.sleep(interval)
            states = self.bgp.peer_states()
            if states != last:
                last = states
                self._on_bgp_event("", None)

    def _write_bgp_status(self) -> None:
        self._bgp_status_pending = False
        if self.decision is not None and not self._stop.is_set():
            self._write_status(self.decision, self.decision.layer2)

    def _status_extra(self, alive: frozenset[str] | None = None, quorum: bool | None = None) -> dict[str, Any]:
        if alive is None:
            alive, quorum = self._alive()
        return {
            "node": self.options.node,
            "members": {"alive": sorted(alive), "quorum": quorum},
            "config": {"valid": self.config_error is None, "error": self.config_error},
        }

    def _write_status(
        self,
        decision: Decision,
        announcing: Mapping[str, tuple[str, ...]],
        *,
        alive: frozenset[str] | None = None,
        quorum: bool | None = None,
        stopped: bool = False,
    ) -> None:
        if self.options.status_file is None:
            return
        status = dict(decision.plan)
        status["announcing"] = {
            "layer2": sorted(announcing, key=_ip_sort_key),
            "bgp": [] if stopped else self.bgp.status(),
        }
        status["bgpPeers"] = [] if stopped else self.bgp.peer_states()
        status.update(self._status_extra(alive, quorum))
        if stopped:
            status["stopped"] = True
        write_atomically(self.options.status_file, status)

    def _write_error_status(self) -> None:
        if self.options.status_file is None:
            return
        status: dict[str, Any] = {"services": {}, "pools": {}, "announcing": {"layer2": [], "bgp": []}}
        status.update(self._status_extra())
        write_atomically(self.options.status_file, status)


def _ip_sort_key(ip: str) -> tuple[int, str]:
    return (6 if ":" in ip else 4, ip)
