"""The speaker's BGP manager: one :class:`BGPSession` per BGPPeer selecting this node, fed by the planner.

MetalLB's ``bgpController`` keeps a session as long as the peer's config is deeply equal to the previous one
and recreates it otherwise; :meth:`BGPSpeaker.update` does the same by comparing ``config.types.Peer`` values,
so editing an unrelated Service or pool never resets a session (metallb#1944): route changes only ever become
UPDATE messages through :meth:`BGPSession.set_routes`.

BFD hook (for ``ironlb.bfd``): pass ``bfd_factory`` to :class:`BGPSpeaker`. For every session whose BGPPeer
names a ``bfdProfile`` the manager calls ``bfd_factory(BFDRequest(...))`` once, right after creating the
session, and gets back a :class:`BFDHandle`. The BFD engine calls ``request.on_down(reason)`` when it declares
the path down; the manager then drops the TCP connection at once (no NOTIFICATION: the peer is unreachable) and
the session redials with its usual backoff. ``handle.close()`` is awaited when the session is closed, or when
only the profile's values changed (the BGP session is then kept and a new handle is made). ``request.session``
gives the BFD engine the local/peer addresses once connected (``session.fsm.local_address``). Without a
factory, ``bfdProfile`` is accepted and ignored (logged once per peer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING, Protocol

from ironlb.cluster.labels import any_matches
from ironlb.config.types import BFDProfile, Peer

from .attributes import Attributes
from .config import BGP_PORT, DynamicASN, PeerConfig
from .metrics import BGPMetrics, PeerSample
from .wire import IPV4_UNICAST, IPV6_UNICAST, Address, Network, family_of

if TYPE_CHECKING:
    # Imported where a session is made (a BGPPeer selects the node): an L2-only node never needs them (issue 16).
    from .fsm import Event
    from .listener import BGPListener
    from .session import BGPSession

log = logging.getLogger(__name__)

DEFAULT_HOLD_TIME = 90
DEFAULT_CONNECT_TIME = 120.0
UNNUMBERED = IPv6Address("::")
"""``PeerConfig.peer_address`` of an unnumbered peer: the real one is learned on the link."""

ADVERTISED = "advertised"
PENDING = "pending"


@dataclass(frozen=True)
class BFDRequest:
    """What the BFD engine needs to watch one BGP peer."""

    peer: Peer
    profile: BFDProfile
    config: PeerConfig
    session: BGPSession
    on_down: Callable[[str], None]

    @property
    def multihop(self) -> bool:
        return self.peer.ebgp_multihop


class BFDHandle(Protocol):
    """A running BFD session for one BGP peer."""

    async def close(self) -> None: ...


BFDFactory = Callable[[BFDRequest], BFDHandle]
SessionFactory = Callable[[PeerConfig, "Callable[[Event], None] | None"], "BGPSession"]


def _default_session_factory(config: PeerConfig, on_event: Callable[[Event], None] | None) -> BGPSession:
    from .session import BGPSession

    return BGPSession(config, on_event=on_event)


def peer_config(peer: Peer, node_name: str) -> PeerConfig:
    """``config.types.Peer`` (already validated, password resolved from its Secret) to a session config.

    holdTime defaults to 90 s (MetalLB native); keepaliveTime None means hold/3. connectTime caps the redial
    backoff (default 2 min, as MetalLB native). The session only carries the peer address's family unless
    ``dualStackAddressFamily`` is set, as MetalLB's FRR modes do. ``localASN`` replaces ``myASN`` on the session.
    A ``passive`` peer (ironlb's ``ironlb.io/passive`` annotation) is never dialled: the peer connects to us.
    """
    if not peer.address and not peer.interface:
        raise ValueError(f"peer {peer.name}: neither peerAddress nor interface")
    # Unnumbered (``interface``): the address is learned on the link; both families, as MetalLB's FRR mode.
    addr = ip_address(peer.address) if peer.address else UNNUMBERED
    hold = DEFAULT_HOLD_TIME if peer.hold_time is None else round(peer.hold_time)
    keepalive = peer.keepalive_time
    if keepalive is not None and (keepalive <= 0 or hold == 0 or keepalive >= hold):
        keepalive = None  # MetalLB allows keepalive == hold; the FSM then uses hold/3
    peer_asn: int | DynamicASN = DynamicASN(peer.dynamic_asn) if peer.dynamic_asn else peer.peer_asn
    own = IPV4_UNICAST if addr.version == 4 else IPV6_UNICAST
    both = peer.dual_stack_address_family or not peer.address
    families = frozenset({IPV4_UNICAST, IPV6_UNICAST}) if both else frozenset({own})
    return PeerConfig(
        my_asn=peer.my_asn,
        peer_asn=peer_asn,
        peer_address=addr,
        peer_port=peer.port,
        router_id=IPv4Address(peer.router_id) if peer.router_id else None,
        hold_time=hold,
        keepalive_time=keepalive,
        connect_time=peer.connect_time or DEFAULT_CONNECT_TIME,
        graceful_restart=peer.enable_graceful_restart,
        families=families,
        source_address=ip_address(peer.source_address) if peer.source_address else None,
        password=peer.password or None,
        ebgp_multihop=peer.ebgp_multihop,
        local_asn=peer.local_asn or None,
        passive=peer.passive,
        node_name=node_name,
        name=peer.name,
        interface=peer.interface if not peer.address else "",
    )


@dataclass
class _Managed:
    peer: Peer
    config: PeerConfig
    session: BGPSession
    routes: Mapping[Network, Attributes] = field(default_factory=dict)
    profile: BFDProfile | None = None
    bfd: BFDHandle | None = None
    bfd_peer: IPv6Address | None = None
    """Unnumbered peers: the (scoped) link-local address the BFD session watches."""


class BGPSpeaker:
    """All BGP sessions of one node.

    Call :meth:`update` with the peers of this node (or all peers plus ``node_labels``) and the planner's route
    table per peer name; call :meth:`close` on shutdown. Runs on the caller's event loop.

    While it has peers it listens on ``listen_port`` (179; None: never) and hands the peers' connections to
    their sessions (passive peers, connection collisions). A port it cannot bind (another BGP daemon on the host)
    is logged once and the sessions only dial.
    """

    def __init__(
        self,
        node_name: str,
        *,
        metrics: BGPMetrics | None = None,
        bfd_factory: BFDFactory | None = None,
        session_factory: SessionFactory = _default_session_factory,
        on_event: Callable[[str, Event], None] | None = None,
        listen_port: int | None = BGP_PORT,
    ) -> None:
        self.node_name = node_name
        self._listen_port = listen_port
        self._listener: BGPListener | None = None
        """Made at the first peer (:meth:`_listen`): with none, the listener module is not even imported."""
        self._listen_errors: list[str] = []
        self._bfd_factory = bfd_factory
        self._session_factory = session_factory
        self._on_event = on_event
        self._peers: dict[str, _Managed] = {}
        self._warned_bfd: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.sessions_created = 0
        self._metrics = metrics if metrics is not None else BGPMetrics(None)
        self._metrics.add_source(self)

    # ------------------------------------------------------------------ inputs

    async def update(
        self,
        peers: Iterable[Peer],
        routes: Mapping[str, Mapping[Network, Attributes]],
        *,
        node_labels: Mapping[str, str] | None = None,
        bfd_profiles: Iterable[BFDProfile] = (),
    ) -> None:
        """Reconcile sessions with ``peers`` and hand each its routes.

        With ``node_labels``, peers whose nodeSelectors do not match are dropped first (MetalLB's syncPeers).
        A peer whose value is unchanged keeps its session; a changed, removed or no longer selected one is
        closed with a cease NOTIFICATION and, if still wanted, recreated.
        """
        wanted = {p.name: p for p in peers if node_labels is None or any_matches(p.node_selectors, node_labels)}
        profiles = {b.name: b for b in bfd_profiles}
        closing = [(name, m) for name, m in self._peers.items() if name not in wanted or wanted[name] != m.peer]
        for name, _ in closing:
            del self._peers[name]
        if closing:
            await asyncio.gather(*(self._close_one(m, "peer deconfigured", graceful=False) for _, m in closing))
        for name, peer in wanted.items():
            managed = self._peers.get(name)
            if managed is None:
                try:
                    managed = self._start(peer)
                except ValueError as err:
                    log.error("BGP peer %s: cannot start session: %s", name, err)
                    continue
                self._peers[name] = managed
            await self._sync_bfd(managed, profiles.get(peer.bfd_profile) if peer.bfd_profile else None)
            # Only what the session can carry: a v6 prefix is not "pending" forever on a v4-only session.
            families = managed.config.families
            table = {pfx: a for pfx, a in routes.get(name, {}).items() if family_of(pfx) in families}
            if table != managed.routes:
                managed.routes = table
                managed.session.set_routes(table)
        self._listen()

    def _listen(self) -> None:
        """Listen while there are peers (bind errors logged when they change), with their MD5 keys."""
        if self._listen_port is None or not self._peers:
            return
        if self._listener is None:
            from .listener import BGPListener

            self._listener = BGPListener(self._lookup, port=self._listen_port)
        # Unnumbered peers are dialled only: their address is learned on the link, not known here.
        peers = [m.config for m in self._peers.values() if not m.config.interface]
        self._listener.set_keys({c.peer_address: c.password or "" for c in peers})
        errors = self._listener.start()
        if errors and errors != self._listen_errors:
            log.warning("BGP: not accepting inbound connections on %s (passive peers cannot connect)",
                        "; ".join(errors))
        self._listen_errors = errors

    def _lookup(self, peer: Address, local: Address) -> BGPSession | None:
        from .listener import peer_of

        return peer_of(self.sessions, peer, local)

    def _start(self, peer: Peer) -> _Managed:
        from .fsm import Established

        config = peer_config(peer, self.node_name)

        def on_event(event: Event, name: str = peer.name) -> None:
            if isinstance(event, Established) and config.interface:
                self._link_bfd(name)
            if self._on_event is not None:
                self._on_event(name, event)

        session = self._session_factory(config, on_event)
        self.sessions_created += 1
        log.info("BGP peer %s (%s) configured, starting session", peer.name, config.label)
        session.start()
        return _Managed(peer, config, session)

    async def _sync_bfd(self, managed: _Managed, profile: BFDProfile | None) -> None:
        if profile == managed.profile and (managed.bfd is not None or profile is None or self._bfd_factory is None):
            return
        if managed.bfd is not None:
            await managed.bfd.close()
            managed.bfd = None
        managed.profile = profile
        if profile is None:
            return
        if managed.config.interface:
            self._link_bfd(managed.peer.name)  # now if the router is known, else when the session is Established
            return
        if self._bfd_factory is None:
            if managed.peer.name not in self._warned_bfd:
                self._warned_bfd.add(managed.peer.name)
                log.warning(
                    "BGP peer %s: bfdProfile %s set but no BFD engine available", managed.peer.name, profile.name
                )
            return
        session = managed.session

        def on_down(reason: str) -> None:
            log.info("BGP peer %s: BFD down (%s), dropping the session", managed.peer.name, reason)
            session.drop_connection(f"BFD down: {reason}")

        managed.bfd = self._bfd_factory(BFDRequest(managed.peer, profile, managed.config, session, on_down))

    def _link_bfd(self, name: str) -> None:
        """BFD for an unnumbered peer: with the router found on the link, at its link-local address (scoped to the
        interface); moved when another router is found there."""
        managed = self._peers.get(name)
        finder = getattr(managed.session, "link_peer", None) if managed is not None else None
        if managed is None or finder is None or managed.profile is None or self._bfd_factory is None:
            return
        router = finder.state.peer()
        if router is None:
            return
        address = IPv6Address(f"{router}%{managed.config.interface}")
        if managed.bfd is not None and managed.bfd_peer == address:
            return
        if managed.bfd is not None:
            old = managed.bfd
            task = asyncio.get_running_loop().create_task(old.close(), name=f"bfd-close-{name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        session = managed.session

        def on_down(reason: str) -> None:
            log.info("BGP peer %s: BFD down (%s), dropping the session", name, reason)
            session.drop_connection(f"BFD down: {reason}")

        config = replace(managed.config, peer_address=address)
        managed.bfd_peer = address
        managed.bfd = self._bfd_factory(BFDRequest(managed.peer, managed.profile, config, session, on_down))

    async def _close_one(self, managed: _Managed, reason: str, *, graceful: bool) -> None:
        if managed.bfd is not None:
            try:
                await managed.bfd.close()
            except Exception:
                log.exception("closing BFD for %s failed", managed.peer.name)
            managed.bfd = None
        from .errors import CeaseSubcode

        log.info("BGP peer %s: closing session (%s)", managed.peer.name, reason)
        await managed.session.close(reason, graceful_restart=graceful, subcode=CeaseSubcode.ADMINISTRATIVE_SHUTDOWN)

    async def close(self, *, graceful_restart: bool = True, reason: str = "ironlb speaker shutting down") -> None:
        """Close every session; ``graceful_restart`` keeps routes at peers that negotiated GR (no NOTIFICATION).

        Peers without GR negotiated (or with ``enableGracefulRestart`` false) get cease 6/2.
        """
        managed = list(self._peers.values())
        self._peers.clear()
        if self._listener is not None:
            await self._listener.close()
        await asyncio.gather(
            *(self._close_one(m, reason, graceful=graceful_restart and m.peer.enable_graceful_restart) for m in managed)
        )
        self._metrics.remove_source(self)

    # ------------------------------------------------------------------ outputs

    @property
    def sessions(self) -> Mapping[str, BGPSession]:
        """Live sessions by BGPPeer name."""
        return {name: m.session for name, m in self._peers.items()}

    def peer_states(self) -> list[dict[str, str]]:
        """``[{"peer": name, "address": addr:port, "state": FSM state}]`` sorted by name."""
        return [
            {"peer": name, "address": m.config.label, "state": m.session.state.value}
            for name, m in sorted(self._peers.items())
        ]

    def status(self) -> list[dict[str, str]]:
        """``[{"peer", "prefix", "state"}]`` for every desired (peer, prefix).

        ``state`` is ``advertised`` once the peer has been sent the prefix with its current attributes,
        ``pending`` while Established but not (yet) sent (e.g. a family the session does not carry), and the
        session's FSM state (``Connect``, ``Active``, ``OpenSent``, ...) while not Established.
        """
        out: list[dict[str, str]] = []
        for name, m in sorted(self._peers.items()):
            fsm = m.session.fsm
            sent = fsm.advertised if fsm.is_established else {}
            for prefix, attrs in sorted(m.routes.items(), key=lambda kv: _net_key(kv[0])):
                if not fsm.is_established:
                    state = fsm.state.value
                else:
                    state = ADVERTISED if sent.get(prefix) == attrs else PENDING
                out.append({"peer": name, "prefix": str(prefix), "state": state})
        return out

    def metric_samples(self) -> list[PeerSample]:
        """Per-session values for :class:`~ironlb.bgp.metrics.BGPMetrics`."""
        out = []
        managed = list(self._peers.values())
        if managed:
            from .fsm import BGPState
        for m in managed:
            fsm = m.session.fsm
            out.append(
                PeerSample(
                    peer=m.config.label,
                    up=fsm.state is BGPState.ESTABLISHED,
                    updates=fsm.counters.updates_sent,
                    announced=fsm.prefixes_announced if fsm.is_established else 0,
                    pending=fsm.prefixes_pending,
                )
            )
        return out


def _net_key(net: Network) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)


def select_peers(peers: Sequence[Peer], node_labels: Mapping[str, str]) -> list[Peer]:
    """The peers whose nodeSelectors match ``node_labels`` (empty selectors: every node)."""
    return [p for p in peers if any_matches(p.node_selectors, node_labels)]


__all__ = [
    "ADVERTISED",
    "DEFAULT_CONNECT_TIME",
    "DEFAULT_HOLD_TIME",
    "PENDING",
    "BFDFactory",
    "BFDHandle",
    "BFDRequest",
    "BGPSpeaker",
    "SessionFactory",
    "peer_config",
    "select_peers",
]
