"""``ironlb speaker``: MetalLB's speaker against a live cluster, around :func:`ironlb.decide.decide_node`.

Informers cache Services, EndpointSlices, Nodes and Namespaces cluster-wide, and the ``metallb.io`` resources,
Secrets (BGP passwords), ConfigMaps (the legacy ``config`` and ``bgpextras``), the status CRs and this node's
ConfigurationState in ironlb's namespace. Three loops on the main event loop (membership, the ARP/NDP responders
and BFD run on the fast path: a process of their own, :mod:`ironlb.fastproc`, or with ``fastpath_process`` off a
thread and loop of their own, :mod:`ironlb.fastpath`):

- **sync**: any relevant change marks the state dirty; the loop rebuilds the configuration when a config object
  (or a Node's labels) changed, re-decides the Services whose inputs changed (all of them, in chunks that yield to
  the loop, when the configuration, the Nodes or the membership view changed: :class:`ironlb.decide.NodeDecider`),
  coalesces bursts of events into a few passes, and applies the result at once through the
  :class:`~ironlb.announce.announcer.Announcer` shared with ``ironlb run``. It never waits on the apiserver, so
  a Node condition or label change re-elects within milliseconds of its watch event, and when the apiserver is
  unreachable the caches simply stay as they were: the node keeps announcing its last known state, and
  membership (UDP between speakers) still moves IPs away from dead nodes.
- **status**: writes ServiceL2Status, ServiceBGPStatus (see :mod:`.status`) and ``ConfigurationState``
  ``speaker-<node>``; after an API error it backs off and retries, replanning from the refreshed caches.
- **discovery** (memberlist configured): lists the speaker Pods by label, as MetalLB does, to know the other
  members' addresses (a member whose Pod is being replaced stays while it is alive or held: its own LEAVE
  decides, as memberlist's does in MetalLB); also finds this node's Pod, the owner of the status CRs.

Events ``nodeAssigned`` and ``announceFailed`` go to the Service through the event recorder (never blocking);
``nodeAssigned`` is recorded when a Service starts being announced from this node over a protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironlb.announce.announcer import Announcer
from ironlb.announce.build import build_announcer
from ironlb.cluster.objects import EndpointSlice, Node, Service
from ironlb.config import ConfigError
from ironlb.config.reading import read_bytes
from ironlb.config.types import Config
from ironlb.decide import (
    BGP,
    LAYER2,
    Context,
    NodeDecider,
    NodeDecision,
    ServiceInput,
    handed_over,
    holding,
    pool_for,
    stand_ins,
)
from ironlb.fastpath import FastPath
from ironlb.fastproc.guard import GuardConfig
from ironlb.fastproc.parent import FastProcess, RemoteMembership
from ironlb.fastproc.spawn import Spawned
from ironlb.ipam.converge import handles_class
from ironlb.kube.client import (
    BFD_PROFILES,
    BGP_ADVERTISEMENTS,
    BGP_PEERS,
    COMMUNITIES,
    CONFIG_MAPS,
    CONFIGURATION_STATES,
    ENDPOINT_SLICES,
    IP_ADDRESS_POOLS,
    L2_ADVERTISEMENTS,
    NAMESPACES,
    NODES,
    PODS,
    SECRETS,
    SERVICE_BGP_STATUSES,
    SERVICE_L2_STATUSES,
    SERVICES,
    ApiError,
    KubeClient,
    KubeError,
    Obj,
    Resource,
    object_key,
)
from ironlb.kube.configstate import ConfigurationStateWriter, owner_reference
from ironlb.kube.events import NORMAL, WARNING, EventRecorder
from ironlb.kube.informer import MODIFIED, Backoff, Informer, wait_synced
from ironlb.kube.slim import slim_node, slim_service, slim_slice, slim_status
from ironlb.layer2.interfaces import DEFAULT_EXCLUDE_PATTERNS
from ironlb.membership.config import MembershipConfig
from ironlb.membership.quorum import successors_have_quorum
from ironlb.membership.wire import MIN_SECRET_LEN
from ironlb.metrics.client import ClientCounters
from ironlb.runtime import age_text

from . import status as st
from .decide import speaker_config
from .restart import node_going_away

if TYPE_CHECKING:
    from ironlb.layer2.responder import Responder
    from ironlb.membership.fsm import Membership
    from ironlb.membership.service import MembershipService

log = logging.getLogger(__name__)

COMPONENT = "metallb-speaker"
CONDITION_TYPE = "configReconcilerValid"
FIELD_MANAGER = "configReconciler"
DEFAULT_ML_LABELS = "app=metallb,component=speaker"
CONFIG_MAP_NAMES = ("config", "bgpextras")
STATUS_RESOURCES = {st.L2: SERVICE_L2_STATUSES, st.BGP: SERVICE_BGP_STATUSES}
RESTART_NODE_READ = 0.5
"""Seconds a stopping speaker waits for its Node (restart or not) before it hands its IPs over as on any stop: well
inside the DaemonSet's ``terminationGracePeriodSeconds`` (2 s), which must also cover the LEAVE and the exit."""
SYNC_CHUNK = 500
"""Services decided between two yields to the event loop (a few milliseconds of work)."""
START_LISTS = 4
"""Connections the decision caches' first lists share: the Services and EndpointSlices, and two for the rest."""
SYNC_BREATHE = 3.0
"""After a sync pass, the loop gets this many times its duration before the next pass (coalescing bursts)."""
SYNC_MAX_PAUSE = 0.1


@dataclass(frozen=True)
class SpeakerOptions:
    node: str
    namespace: str = "metallb-system"
    lb_class: str = ""
    ignore_exclude_lb: bool = False
    ml_bind_addr: str = ""  # memberlist runs only with both ml_bind_addr and ml_labels, as in MetalLB
    ml_bind_port: int = 7946
    ml_labels: str = ""
    ml_secret_key_path: str = ""  # directory holding ``secretkey``
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    discovery_interval: float = 30.0  # speaker Pods are re-listed this often (and on Node adds/deletes)
    exclude_interfaces: tuple[str, ...] = DEFAULT_EXCLUDE_PATTERNS
    gratuitous_interval: float = 1.1
    gratuitous_duration: float = 5.0
    handover_timeout: float = 2.0  # an IP given away is answered until the new owner claims it, at most this long
    restart_hold: float = 20.0  # a stop while the Node stays up is a restart: the others hold its IPs that long
    rescan_interval: float = 10.0
    # Status CR writes in flight at once: each is a round trip to the apiserver, so one at a time bounds a speaker
    # at ~1/RTT writes a second however high its request limit is.
    status_concurrency: int = 16
    fastpath_process: bool = False  # membership, responders, BFD in a process of their own (ironlb speaker's default)
    guard: GuardConfig = field(default_factory=GuardConfig)  # the fast process's rules (wedge timeout, join grace)
    log_level: str = "info"  # the fast process's

    @property
    def memberlist(self) -> bool:
        return bool(self.ml_bind_addr and self.ml_labels)


def read_secret_key(path: str) -> bytes | None:
    """``<path>/secretkey`` (MetalLB's ML_SECRET_KEY_PATH layout), or None."""
    if not path:
        return None
    try:
        return read_bytes(Path(path) / "secretkey", 64 * 1024).strip() or None  # a regular file, bounded
    except ConfigError as err:
        log.warning("cannot read the memberlist secret key: %s", err)
        return None


class Speaker:
    """One node's speaker; :meth:`run` until cancelled, then :meth:`close`."""

    def __init__(
        self,
        client: KubeClient,
        options: SpeakerOptions,
        *,
        announcer: Announcer | None = None,
        recorder: EventRecorder | None = None,
        counters: ClientCounters | None = None,
        fastpath: FastPath | None = None,
        status_client: KubeClient | None = None,
        fastproc_spawned: Spawned | None = None,
    ) -> None:
        self.client = client
        # ServiceL2Status/ServiceBGPStatus writes under their own token bucket (as the event recorder has one), so
        # a burst of 1,000 new statuses neither waits behind nor delays informer lists and ConfigurationState.
        self.status_client = status_client or client
        self.options = options
        self.node = options.node
        # Membership, the responders and BFD run on the fast path (their own thread and loop): informers,
        # configuration, planning and BGP on this loop cannot delay a heartbeat or an ARP answer.
        # With fastpath_process, in a process of their own (ironlb.fastproc): not even the GIL is shared.
        self.fastproc: FastProcess | None = None
        self._lost: str | None = None
        self._lost_event = asyncio.Event()
        if announcer is None:
            announcer, self.fastproc = build_announcer(
                options, on_lost=self._on_fastpath_lost, spawned=fastproc_spawned, fastpath=fastpath
            )
        self.announcer = announcer
        self.fastpath = fastpath or announcer.fastpath
        self.recorder = recorder or EventRecorder(client, COMPONENT, host=options.node)
        self.counters = counters or ClientCounters()
        ns = options.namespace

        self._dirty = asyncio.Event()
        self._first_pass = asyncio.Event()  # the sync loop's first pass is done (announced or not)

        def inf(res: Resource, namespace: str | None = None, **kw: Any) -> Informer:
            return Informer(client, res, namespace=namespace, **kw)

        # The decision caches' first lists share START_LISTS connections (the Services and EndpointSlices first:
        # the longest), and they watch once the first pass has announced: 12 TLS handshakes at once cost the first
        # announcement more CPU than these lists' round trips on a few kept-alive connections (issue 16).
        slots = asyncio.Semaphore(START_LISTS)

        def dec(res: Resource, namespace: str | None = None, **kw: Any) -> Informer:
            return inf(res, namespace, list_slots=slots, watch_after=self._first_pass, **kw)

        self.services = dec(SERVICES, transform=slim_service)
        self.slices = dec(ENDPOINT_SLICES, transform=slim_slice)
        self.nodes = dec(NODES, transform=slim_node)
        self.namespaces = dec(NAMESPACES)
        self.config_informers = [
            dec(IP_ADDRESS_POOLS, ns),
            dec(L2_ADVERTISEMENTS, ns),
            dec(BGP_ADVERTISEMENTS, ns),
            dec(BGP_PEERS, ns),
            dec(BFD_PROFILES, ns),
            dec(COMMUNITIES, ns),
            dec(SECRETS, ns),
            dec(CONFIG_MAPS, ns),
        ]
        # Every node's ServiceL2Status (the winner removes the others'), but only this node's ServiceBGPStatus.
        self.l2_statuses = inf(SERVICE_L2_STATUSES, ns, transform=slim_status)
        self.bgp_statuses = inf(
            SERVICE_BGP_STATUSES, ns, transform=slim_status, label_selector=f"{st.NODE_LABEL}={options.node}"
        )
        self.states = inf(CONFIGURATION_STATES, ns, field_selector=f"metadata.name={self.state_name}")
        self.state_writer = ConfigurationStateWriter(
            client,
            self.states,
            namespace=ns,
            name=self.state_name,
            labels={"metallb.io/component-type": "speaker", "metallb.io/node-name": options.node},
            condition_type=CONDITION_TYPE,
            field_manager=FIELD_MANAGER,
            create_manager="ironlb-speaker",
        )
        # What a decision reads: the first announcement waits for these only. The status caches (every node's
        # ServiceL2Status: one per Service) are needed before writing statuses, not before answering: they are
        # listed after the first sync pass (_start_status_informers).
        self.decision_informers = [self.services, self.slices, self.nodes, self.namespaces, *self.config_informers]
        self.config_sources = [*self.config_informers, self.nodes, self.namespaces]  # what _build_config reads
        self.status_informers = [self.l2_statuses, self.bgp_statuses, self.states]
        self.informers = [*self.decision_informers, *self.status_informers]

        self.config: Config | None = None  # the last valid configuration, in force
        self.config_error: str | None = None
        self.config_evaluated = False
        self.decision: NodeDecision | None = None
        self._ingress: dict[str, tuple[str, ...]] = {}  # each announced Service's IPs, for hand-overs
        self._held: dict[str, frozenset[str]] = {}  # members held for a restart, with the IPs they keep
        self._late_holds: frozenset[str] = frozenset()  # held members the last decision counted fully (_context)
        self._late_pending: frozenset[str] = frozenset()  # those of them whose share for us came in part so far
        self._decided_live: frozenset[str] | None = None  # the live members of ``decision``'s context
        self.synced = False
        self.membership: MembershipService | RemoteMembership | None = None
        self._core: Membership | None = None
        self._members_known = False  # the speaker pods were listed at least once (see _live)
        self._kept_members: frozenset[str] = frozenset()  # members kept without a listed Pod (_use_pods)
        self._add_relayed = False  # the membership named held members our listing lacks (_on_membership)
        self.syncs = 0

        self._config_dirty = True
        self._status_wake = asyncio.Event()
        self._discover_wake = asyncio.Event()
        self._parsed: dict[str, tuple[str, Service]] = {}
        # Incremental decisions: a Service or EndpointSlice event re-decides that Service only (its key lands in
        # _pending); a new configuration, Node or membership view re-decides them all, in chunks between which
        # the loop runs (status writes, watch events, the fast process's channel).
        self._decider: NodeDecider | None = None
        self._pending: dict[str, None] = {}  # service keys whose inputs changed (an ordered set)
        self._node_objects: tuple[Node, ...] = ()
        self._nodes_dirty = True
        self._slices: dict[tuple[str, str], dict[str, EndpointSlice]] = {}
        self._slice_owner: dict[str, tuple[str, str]] = {}
        self._announced: set[tuple[str, str]] = set()  # (service key, protocol)
        self._failed: set[str] = set()
        # The status loop plans only the Services whose desired status or status objects changed since its last
        # plan (None: all of them, at the start and after an error).
        self._status_dirty: set[str] | None = None
        self._planned: dict[str, Mapping[str, tuple[str, ...]]] = {}

        self.services.add_handler(self._on_service)
        self.slices.add_handler(self._on_slice)
        self.nodes.add_handler(self._on_node)
        self.namespaces.add_handler(self._on_namespace)
        for informer in self.config_informers:
            informer.add_handler(self._on_config)
        for informer in (self.l2_statuses, self.bgp_statuses, self.states):
            informer.add_handler(self._on_status)

    @property
    def owner(self) -> dict[str, Any] | None:
        """This node's speaker Pod, owner of the objects this speaker creates."""
        return self.state_writer.owner

    @property
    def state_name(self) -> str:
        return f"speaker-{self.node}"

    @property
    def ready(self) -> bool:
        return self.synced and self.decision is not None

    # ------------------------------------------------------------------------------------------------ handlers
    def _mark(self, config: bool = False) -> None:
        self._config_dirty |= config
        self._dirty.set()

    def _mark_service(self, key: str) -> None:
        self._pending[key] = None
        self._dirty.set()

    def _on_service(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        self._mark_service(object_key(new or old or {}))

    def _on_slice(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        key = object_key(new or old or {})
        previous = self._slice_owner.pop(key, None)
        if previous is not None:
            bucket = self._slices.get(previous, {})
            bucket.pop(key, None)
            if not bucket:
                self._slices.pop(previous, None)
            self._mark_service(f"{previous[0]}/{previous[1]}")
        if new is not None:
            eps = EndpointSlice.from_dict(new)
            if eps.service_name:
                owner = (eps.namespace, eps.service_name)
                self._slices.setdefault(owner, {})[key] = eps
                self._slice_owner[key] = owner
                self._mark_service(f"{owner[0]}/{owner[1]}")

    def _on_node(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        self._nodes_dirty = True
        if kind != MODIFIED:
            self._discover_wake.set()  # a new node usually brings a new speaker Pod
            self._mark(config=True)
            return
        before, after = Node.from_dict(old or {}), Node.from_dict(new or {})
        if before.labels != after.labels:
            self._mark(config=True)
        elif before.network_unavailable != after.network_unavailable:
            self._mark()

    def _on_namespace(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        labels = [((o or {}).get("metadata") or {}).get("labels") for o in (old, new)]
        if kind != MODIFIED or labels[0] != labels[1]:
            self._mark(config=True)

    def _on_config(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        self._mark(config=True)

    def _on_status(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        dirty = self._status_dirty
        if dirty is not None:
            for obj in (old, new):
                if obj is not None and (svc := st.service_of(obj)) is not None:
                    dirty.add(svc)
                elif obj is not None and st.labels_of(obj).get(st.NODE_LABEL) == self.node:
                    self._status_dirty = None  # one of ours without a Service: a full plan deletes it
        self._status_wake.set()

    def _on_membership(self, alive: frozenset[str], has_quorum: bool) -> None:
        log.info("members alive: %s (quorum: %s)", ",".join(sorted(alive)), has_quorum)
        if self._kept_members - alive:
            self._discover_wake.set()  # a member kept without a Pod has gone: list again to drop it
        view = self.membership.view if self.membership is not None else None
        if view is not None and view.unlisted.keys() - view.members.keys():
            # A held member our listing lacks (_use_pods): add it to the last listing at once (the settle bound is
            # short, and the member's Pod is not listed anyway while it is replaced).
            self._add_relayed = True
            self._discover_wake.set()
        self._mark()

    # ------------------------------------------------------------------------------------------------ running
    async def run(self) -> None:
        """Run until cancelled (then call :meth:`close`)."""
        async with asyncio.TaskGroup() as tg:
            for informer in self.decision_informers:
                tg.create_task(informer.run(), name=f"informer-{informer.name}")
            tg.create_task(self._start_status_informers(tg), name="status-informers")
            tg.create_task(self.recorder.run(), name="event-recorder")
            if self.fastproc is not None:
                await self.fastproc.start()
                tg.create_task(self._watch_fastpath(), name="fastpath-watch")
            if not self.fastpath.running:
                await self.fastpath.start()
            await self.announcer.start()
            await self._start_membership()
            tg.create_task(self._discovery_loop(), name="discovery")
            await self._wait_synced()
            self.synced = True
            log.info(
                "caches synced: %d services, %d nodes (%s)", len(self.services.store), len(self.nodes.store), age_text()
            )
            tg.create_task(self._status_loop(), name="status")
            self._mark()  # the configuration is built again only if one of its objects changed since (handlers)
            await self._sync_loop()

    async def _start_status_informers(self, tg: asyncio.TaskGroup) -> None:
        """The status caches (every node's ServiceL2Status and this node's ServiceBGPStatus: one per Service) are
        listed once the first sync pass is done: the status loop needs them, the first announcement does not, and
        listing thousands of them beside the Services would delay it (issue 16, fast start)."""
        await self._first_pass.wait()
        for informer in self.status_informers:
            tg.create_task(informer.run(), name=f"informer-{informer.name}")

    async def _wait_synced(self) -> None:
        """Until every cache a decision reads has listed once. The configuration is built as soon as its own
        objects are listed: its first build (the models' validators, tens of milliseconds) then runs while the
        Services and EndpointSlices, thousands of objects, are still arriving, not after them."""
        await wait_synced(self.config_sources)
        if self._config_dirty:
            try:
                self._build_config()
            except Exception:  # a bug: the first sync builds it again, under the sync loop's own handler
                log.exception("building the configuration failed")
                self._config_dirty = True
        await wait_synced(self.decision_informers)

    async def close(self) -> None:
        """Leave the membership (the others take over at once) and withdraw everything.

        Make before break: the IPs a successor will take are still answered after the LEAVE until it has claimed
        them on the wire, or the hand-over timeout.
        """
        membership = self.membership
        hand_over: frozenset[str] = frozenset()
        hold = await self._restart_hold()  # not None: nothing moves, so nothing is handed over
        if hold is None and membership is not None and self.decision is not None and self._live()[1]:
            view = membership.view
            # Without quorum once this node has left, the others announce nothing: there is nobody to wait for.
            if successors_have_quorum(self.options.membership.quorum, view.alive, len(view.members), self.node):
                hand_over = handed_over(self.node, self.decision.layer2, self._ingress, leaving=True)

        async def leave() -> None:
            if isinstance(membership, RemoteMembership):
                if hold is not None:
                    await membership.restart_leave(self.options.restart_hold, hold)
                elif self.fastpath.running:
                    await self.fastpath.call(membership.stop(leave=True))
            elif membership is not None and self.fastpath.running:
                await self.fastpath.call(self._leave(membership, hold))

        self.membership = None
        await self.announcer.close(graceful_restart=True, hand_over=hand_over, before_silence=leave)
        await self.fastpath.stop()
        if self.fastproc is not None:
            await self.fastproc.stop(leave=True)
        log.info("stopped; all announcements withdrawn")

    async def _leave(self, membership: MembershipService, stand_in: Mapping[str, list[str]] | None) -> None:
        """Thread mode's LEAVE (on the fast loop): with ``stand_in``, the hold LEAVE the fast process would send."""
        offer = None
        if stand_in is not None:
            from ironlb.fastproc.holds import hold_offer

            offer = hold_offer(self._responder(), self.options.restart_hold, stand_in)
        await membership.stop(leave=True, hold=offer)

    def _responder(self) -> Responder | None:
        """Thread mode's responder (the announcer's, on the fast path); None with the fast process."""
        from ironlb.layer2.responder import Responder

        responder = self.announcer.responder
        return responder if isinstance(responder, Responder) else None

    async def _restart_hold(self) -> dict[str, list[str]] | None:
        """A stop while this speaker's Node stays up (``speaker.restart``) is a restart: per member the IPs it stands
        in for while nothing moves. None: a plain stop that hands the IPs over."""
        membership = self.membership
        if self.options.restart_hold <= 0 or membership is None or self.decision is None:
            return None
        if not self._live()[1]:
            return None
        try:
            async with asyncio.timeout(RESTART_NODE_READ):
                node = await self.client.get(NODES, self.node)
        except Exception as err:  # no API server: the conservative choice, a hand-over
            why: str | None = f"its Node cannot be read ({type(err).__name__}: {err})"
        else:
            why = node_going_away(node)
        if why is not None:
            log.info("stopping: %s, so the IPs are handed over", why)
            return None
        log.info("stopping while the Node stays up: a restart; the others hold its IPs for up to %.0f s",
                 self.options.restart_hold)  # fmt: skip
        return stand_ins(self.node, self.decision.layer2, self._ingress, membership.view.alive)

    def _on_fastpath_lost(self, why: str) -> None:
        self._lost = why
        self._lost_event.set()

    async def _watch_fastpath(self) -> None:
        """Without its fast process a speaker neither answers nor detects failures: fail (exit 1, restarted)."""
        await self._lost_event.wait()
        raise RuntimeError(self._lost or "the fast path process is gone")

    async def _start_membership(self) -> None:
        opts = self.options
        if not opts.memberlist:
            log.info("not starting fast dead node detection (memberlist), need ml-bindaddr / ml-labels config")
            return
        secret = read_secret_key(opts.ml_secret_key_path)
        if secret is None or len(secret) < MIN_SECRET_LEN:
            # No key, no membership: heartbeats anyone can sign would let anyone on the LAN move the IPs.
            log.error(
                "not starting fast dead node detection (memberlist): no secret key of at least %d bytes in "
                "ml-secret-key-path %r (the controller creates the memberlist Secret); node liveness follows "
                "the Node objects",
                MIN_SECRET_LEN,
                opts.ml_secret_key_path,
            )
            return
        own = (opts.ml_bind_addr, opts.ml_bind_port)
        if self.fastproc is not None:
            remote = RemoteMembership(
                self.fastproc, self.node, secret, {self.node: own}, opts.membership, bind=own,
                on_change=self._on_membership,
            )  # fmt: skip
            self.membership = remote
            await remote.start()
            return
        # Thread mode: the fast process's work on a thread, restart holds by the same code (fastproc.holds). The core
        # is imported here only: the fast process runs it otherwise (issue 16, fast start).
        from ironlb.fastproc.holds import threaded_membership
        from ironlb.membership.fsm import Membership

        self._core = Membership(self.node, secret, {self.node: own}, opts.membership)
        service = threaded_membership(
            self._core, self._responder(), self.announcer.metrics.standin, self.fastpath.to_main(self._on_membership),
            bind=own,
        )  # fmt: skip
        self.membership = service
        await self.fastpath.call(service.start())

    def _live(self) -> tuple[frozenset[str] | None, bool]:
        """Live speakers (None: every Node, memberlist not configured) and whether L2 may announce."""
        if self.membership is None:
            return None, True
        view = self.membership.view  # an immutable snapshot published by the fast path
        # Until the first discovery of the speaker pods, membership knows only this node: it would win every
        # election and answer beside the real owner. Layer 2 waits for the member list, then for it to settle.
        return view.alive, view.has_quorum and view.settled and self._members_known

    # ------------------------------------------------------------------------------------------------ discovery
    async def _discovery_loop(self) -> None:
        """List the speaker Pods (by label, as MetalLB) for member addresses and this node's Pod."""
        labels = self.options.ml_labels or DEFAULT_ML_LABELS
        backoff = Backoff(1.0, 30.0)
        while True:
            self._discover_wake.clear()
            try:
                pods, _ = await self.client.list_all(PODS, self.options.namespace, label_selector=labels)
            except KubeError as err:
                delay = backoff.next()
                log.warning("listing speaker pods failed: %s; retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            await self._use_pods(pods)
            # asyncio.timeout, not wait_for: on 3.11 wait_for may lose a stop (see kube.informer.wait_synced).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.discovery_interval):
                    await self._discover_wake.wait()
                    while self._add_relayed:  # a held member the listing lacks: add it at once, no new listing
                        self._add_relayed = False
                        self._discover_wake.clear()
                        await self._use_pods(pods)
                        await self._discover_wake.wait()
            await asyncio.sleep(0.2)  # coalesce a burst of Node events into one list

    async def _use_pods(self, pods: list[Obj]) -> None:
        members: dict[str, tuple[str, int]] = {}
        for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or "")):
            meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
            node, ip = spec.get("nodeName"), status.get("podIP")
            if not node or meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
                continue
            if node == self.node and (owner := owner_reference(pod)) != self.state_writer.owner:
                self.state_writer.owner = owner
                self._status_wake.set()  # add this Pod to the ConfigurationState's owners
            if ip:
                members[str(node)] = (str(ip), self.options.ml_bind_port)
        if self.membership is None:
            return
        members[self.node] = (self.options.ml_bind_addr, self.options.ml_bind_port)
        membership = self.membership
        view = membership.view
        # The listing adds members and follows their addresses, but does not drop one that is alive or held in
        # the membership: a restarting speaker's Pod is terminating, then gone, then replaced by its DaemonSet
        # (Pending, without an IP) while the others hold it, and dropping it would end its hold ("removed") and
        # move its IPs. Its own LEAVE, its timeout or its hold's end decides; the next listing drops it then.
        kept = frozenset(n for n in view.alive | view.held if n not in members and n in view.members)
        members.update((name, view.members[name]) for name in sorted(kept))
        if kept != self._kept_members:
            if kept - self._kept_members:
                log.info("speaker pods: keeping %s, alive or held in the membership, until it leaves",
                         ", ".join(sorted(kept - self._kept_members)))
            self._kept_members = kept
        # While this speaker settles, its peers' HOLDS may name a restarting member this listing lacks (its Pod
        # is being replaced): add it, so that this speaker holds it as they do (from their next HOLDS) instead of
        # taking its IPs as a crashed member's. Once held it is kept as above; if not, the next listing drops it.
        relayed = {name: address for name, address in view.unlisted.items() if name not in members}
        if relayed:
            log.info("speaker pods: adding %s, held by the other members for a restart", ", ".join(sorted(relayed)))
            members.update(relayed)
        if members != {self.node: members[self.node], **view.members}:
            try:
                await self.fastpath.call(lambda: membership.set_members(members))
            except ValueError as err:
                log.warning("speaker pods: %s", err)
                return
            log.info("members: %s", ", ".join(f"{n}={a}:{p}" for n, (a, p) in sorted(members.items())))
            self._mark()
        if not self._members_known:
            self._members_known = True
            self._mark()

    # ------------------------------------------------------------------------------------------------ sync
    async def _sync_loop(self) -> None:
        """Sync on every change, coalescing bursts: after a pass that took ``t``, the next starts no sooner than
        ``SYNC_BREATHE * t`` later (at most :data:`SYNC_MAX_PAUSE`). A pass costs its changed Services plus a few
        whole-set copies (milliseconds at 10,000 Services), so a burst of watch events becomes a few passes, and
        the loop keeps time for status writes, never a pass per event."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0)  # let events of the same batch arrive first
            self._dirty.clear()
            started = time.monotonic()
            try:
                await self.sync()
            except Exception:
                log.exception("sync failed; keeping the previous announcements")
            self._first_pass.set()
            pause = min((time.monotonic() - started) * SYNC_BREATHE, SYNC_MAX_PAUSE)
            if pause > 0.001:
                await asyncio.sleep(pause)

    def _build_config(self) -> None:
        self._config_dirty = False
        self.config_evaluated = True
        ns = self.options.namespace
        mine = self.nodes.store.get(self.node)
        labels = Node.from_dict(mine).labels if mine else {}
        objects: list[Obj] = []
        for informer in self.config_informers:
            for obj in informer.store.values():
                if informer.resource is CONFIG_MAPS and (obj.get("metadata") or {}).get("name") not in CONFIG_MAP_NAMES:
                    continue
                objects.append(obj)
        objects += self.namespaces.store.values()
        objects += self.nodes.store.values()
        try:
            config = speaker_config(objects, labels, ns)
        except ConfigError as err:
            if self.config_error != str(err):
                log.error("failed to parse the configuration: %s", err)
            self.config_error = str(err)
            self.counters.config_stale = True
        else:
            if self.config_error is not None:
                log.info("configuration is valid again")
            self.config_error = None
            self.counters.config_stale = False
            self.counters.config_loaded = True
            if config != self.config:  # an equal one keeps the one in force: its Services' decisions stand
                log.info("new configuration: %d pool(s), %d BGP peer(s)", len(config.pools), len(config.peers))
                self.config = config
        self._status_wake.set()

    def _service_input(self, key: str, config: Config) -> ServiceInput | None:
        """One Service as the decision reads it, or None when it is not this speaker's to announce."""
        obj = self.services.store.get(key)
        if obj is None:
            self._parsed.pop(key, None)
            return None
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        cached = self._parsed.get(key)
        svc = cached[1] if cached is not None and cached[0] == rv else Service.from_dict(obj)
        self._parsed[key] = (rv, svc)
        if not svc.is_load_balancer or not svc.ingress or not handles_class(svc, self.options.lb_class):
            return None
        slices = tuple(self._slices.get((svc.namespace, svc.name), {}).values())
        return ServiceInput(svc, pool_for(config, svc.ingress), slices)

    def _context(self, config: Config) -> Context:
        """What every Service's decision shares: a change re-decides them all."""
        if self._nodes_dirty:
            self._nodes_dirty = False
            self._node_objects = tuple(Node.from_dict(o) for o in self.nodes.store.values())
        live, may_l2 = self._live()
        # A member held for a restart keeps the IPs it had as its hold began (the last decision), and no other; one
        # the last decision did not count alive (this speaker just started) counts fully for one decision, and is
        # given its IPs from that one (``decide.holding``'s ``late``, :meth:`_publish` decides again at once).
        view = self.membership.view if self.membership is not None else None
        held = view.held if view is not None and live is not None else frozenset()
        layer2 = self.decision.layer2 if self.decision is not None else None
        names = sorted(held & live if live else ())
        self._held = holding(
            names, self._held, layer2, self._ingress, counted=self._decided_live, late=self._late_holds,
            me=self.node, standing_in=view.standing_in if view is not None else None,
            pending=view.pending if view is not None else (), known=view.kept if view is not None else None,
        )  # fmt: skip
        self._late_holds = frozenset(name for name in names if name not in self._held)
        self._late_pending = view.pending if view is not None else frozenset()
        return Context(
            config, self.node, self._node_objects, None if live is None else frozenset(live), may_l2,
            self.options.ignore_exclude_lb, frozenset(self.announcer.responder.interface_names), held=self._held,
        )  # fmt: skip

    async def sync(self) -> None:
        """Elect, plan and announce from the caches (only what changed); then hand the statuses to the status loop.

        The Services whose inputs changed are decided again, or all of them when the context changed (a new
        configuration, Node or membership view), :data:`SYNC_CHUNK` at a time with the loop running in between; the
        result is applied once every Service is decided from the same context. If the membership view changed
        meanwhile, nothing is applied: the next pass decides again from the new view (the fast process only
        takes decisions tagged with the view they were made from).
        """
        started = time.monotonic()
        if self._config_dirty:
            self._build_config()
        config = self.config
        if config is None:
            return
        ctx = self._context(config)
        decider = self._decider
        if decider is None or decider.ctx.config is not config:  # every Service's pool may have changed
            keys = dict.fromkeys([*self.services.store.keys(), *(decider.keys() if decider is not None else ())])
            self._pending.clear()
            if decider is None:
                decider = self._decider = NodeDecider(ctx)
        else:
            keys, self._pending = self._pending, {}
        if decider.set_context(ctx) and decider.urgent:
            # Speakers died: decide their Services first and announce at once (the others' winners stand).
            decider.step(decider.urgent)
            await self._publish(decider.decision(complete=False), ctx)
        for i, key in enumerate(keys, 1):
            item = self._service_input(key, config)
            if item is None:
                decider.remove(key)
                self._ingress.pop(key, None)
            else:
                decider.put(key, item)
                self._ingress[key] = item.service.ingress
            if i % SYNC_CHUNK == 0:
                await asyncio.sleep(0)
        while decider.step(SYNC_CHUNK):
            await asyncio.sleep(0)
        if await self._publish(decider.decision(), ctx):
            log.debug("synced %d Services in %.1f ms", len(keys), (time.monotonic() - started) * 1000)

    async def _publish(self, decision: NodeDecision, ctx: Context) -> bool:
        """Announce ``decision`` (made from ``ctx``), unless the membership view changed since: then the loop
        decides again first (the fast process only takes decisions tagged with the view they were made from)."""
        if self._live() != (ctx.live, ctx.may_announce_l2):
            self._dirty.set()
            return False
        live, may_l2 = ctx.live, ctx.may_announce_l2
        hand_over = handed_over(self.node, decision.layer2, self._ingress) if may_l2 and live is not None else ()
        await self.announcer.apply(decision.announcement, hand_over)
        if self.syncs == 0:
            log.info("first announcement: %d Layer 2 IPs, %d BGP peers (%s)", len(decision.announcement.layer2),
                     len(decision.announcement.bgp.peers) if decision.announcement.bgp else 0, age_text())  # fmt: skip
        self.decision = decision
        self._decided_live = ctx.live
        if self._late_holds - self._late_pending:
            # Give the held members this decision counted fully their IPs (see _context); one whose share is still
            # coming waits for it (the view's change that completes it decides again).
            self._dirty.set()
        self.syncs += 1
        self._record_events(decision)
        self._status_wake.set()
        return True

    def _record_events(self, decision: NodeDecision) -> None:
        announced = {(k, LAYER2) for k in decision.l2_status}
        if decision.bgp is not None:
            announced |= {(k, BGP) for k, reason in decision.bgp.reasons.items() if reason is None}
        for key, protocol in sorted(announced - self._announced):
            obj = self.services.store.get(key)
            if obj is not None:
                self.recorder.event(
                    obj, NORMAL, "nodeAssigned", f'announcing from node "{self.node}" with protocol "{protocol}"'
                )
        self._announced = announced
        failed = set(decision.announce_failed)
        for key in sorted(failed - self._failed):
            obj = self.services.store.get(key)
            for ip in decision.announce_failed[key]:
                log.warning("%s: none of the interfaces for %s exists on this node", key, ip)
                if obj is not None:
                    self.recorder.event(
                        obj, WARNING, "announceFailed",
                        f'the interfaces specified by LB IP "{ip}" doesn\'t exist in assigned node "{self.node}" '
                        'with protocol "layer2"',
                    )  # fmt: skip
        self._failed = failed

    # ------------------------------------------------------------------------------------------------ status
    async def _status_loop(self) -> None:
        await wait_synced(self.status_informers)  # plan writes against what exists, never blind creates
        backoff = Backoff(0.5, 30.0)
        while True:
            await self._status_wake.wait()
            self._status_wake.clear()
            try:
                await self.write_statuses()
            except KubeError as err:
                self._status_dirty = None  # plan everything again from the refreshed caches
                self.counters.update_errors += 1
                delay = backoff.next()
                log.warning("writing statuses failed: %s; retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)
                self._status_wake.set()
            else:
                backoff.reset()

    async def write_statuses(self) -> None:
        await self._write_configuration_state()
        decision = self.decision
        if decision is None:
            return
        keys, self._status_dirty = self._status_dirty, set()
        actions: list[tuple[Informer, st.Action]] = []
        for kind, informer, desired in (
            (st.L2, self.l2_statuses, decision.l2_status),
            (st.BGP, self.bgp_statuses, decision.bgp_status),
        ):
            previous, self._planned[kind] = self._planned.get(kind), desired
            if keys is None or previous is None:
                planned = st.plan_actions(kind, self.node, desired, informer.store.values())
            else:  # the Services whose desired status or objects changed: a few, not 10,000 each time
                planned = st.plan_changes(kind, self.node, desired, previous, keys, informer.store.values())
            actions += [(informer, action) for action in planned]
        if not actions:
            return
        # Independent objects (one per Service, or another node's leftover): written concurrently, bounded. Every
        # action runs to its end before a failure is raised, so one refused write does not cancel the others
        # half-way; the status loop plans again from the refreshed cache and redoes what is still missing.
        gate = asyncio.Semaphore(max(1, self.options.status_concurrency))

        async def one(informer: Informer, action: st.Action) -> None:
            async with gate:
                await self._execute(informer, action)

        results = await asyncio.gather(*(one(i, a) for i, a in actions), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _execute(self, informer: Informer, action: st.Action) -> None:
        ns = self.options.namespace
        res = STATUS_RESOURCES[action.kind]
        client = self.status_client
        self.counters.updates += 1
        if isinstance(action, st.Delete):
            await client.delete(res, action.name, ns)
            return
        if isinstance(action, st.Create):
            created = await client.create(
                res, st.new_object(action.kind, self.node, action.service, ns, self.owner), ns
            )
            informer.put_local(created)
            name = st.name_of(created)
        else:
            name = action.name
        try:
            written = await client.patch(res, name, {"status": dict(action.status)}, ns, subresource="status")
        except ApiError as err:
            if err.not_found:
                return  # deleted meanwhile; the next plan recreates it if still wanted
            raise
        informer.put_local(written)

    def desired_state(self) -> dict[str, Any]:
        """The ConfigurationState status for the latest config evaluation (MetalLB's condition and summary)."""
        return self.state_writer.desired(self.config_error)

    async def _write_configuration_state(self) -> None:
        if self.config_evaluated and await self.state_writer.write(self.config_error):
            self.counters.updates += 1


__all__ = ["COMPONENT", "Speaker", "SpeakerOptions", "read_secret_key"]
