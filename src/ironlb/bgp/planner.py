"""Which node advertises which prefix to which BGP peer: MetalLB's speaker BGP controller, as pure functions.

MetalLB's ``speaker/bgp_controller.go`` decides per (service, node) with ``ShouldAnnounce`` and then builds one
advertisement per LB IP x matching BGPAdvertisement (``SetBalancer``); each peer session gets the ads whose
``peers`` list is empty or names it, and identical prefixes are merged (communities unioned). This module does
the same without any I/O so that ``ironlb plan``, ``ironlb run`` and the tests all share one implementation:

- :func:`should_announce` returns MetalLB's reason not to announce, checked in MetalLB's order
  (``notOwner``, ``noMatchingAdvertisement``, ``conflictingAdvertisements``, ``nodeNetworkUnavailable``,
  ``nodeLabeledExcludeBalancers``, ``noLocalEndpoints``/``noEndpoints``), or None.
- :func:`advertisements` gives the service's :class:`Advertisement` values for one node.
- :func:`plan_node` runs both for every service and merges the result into one route table per peer, which is
  what :class:`ironlb.bgp.speaker.BGPSpeaker` feeds to the sessions.

Unlike Layer 2 there is no election: every eligible node announces, and the router's ECMP spreads the traffic.
With ironlb's ``ironlb.io/link-bandwidth: ready-endpoints`` annotation on a BGPAdvertisement, the prefixes of
``externalTrafficPolicy: Local`` services also carry the node's ready local endpoints as a Link Bandwidth
extended community, so that a router with weighted ECMP spreads the traffic by pods rather than by nodes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from ironlb.cluster.labels import any_matches
from ironlb.cluster.objects import EndpointSlice, Node, Service
from ironlb.cluster.reasons import (
    CONFLICTING_ADVERTISEMENTS,
    NO_ENDPOINTS,
    NO_IP_ALLOCATED,
    NO_LOCAL_ENDPOINTS,
    NO_MATCHING_ADVERTISEMENT,
    NODE_LABELED_EXCLUDE_BALANCERS,
    NODE_NETWORK_UNAVAILABLE,
    NOT_LOAD_BALANCER,
    NOT_OWNER,
    node_state_reason,
)
from ironlb.config.types import BGPAdvertisement, Community, Config, Peer, Pool, local_prefs_may_collide

from .attributes import MAX_LINK_BANDWIDTH_INT, Attributes
from .updates import sort_key
from .wire import Network

# One ready endpoint weighs 1 Mbit/s: only the ratios matter to the router, and the unit keeps every sum FRR
# makes within 32 bits up to thousands of endpoints.
BYTES_PER_ENDPOINT = 125_000

__all__ = [
    "BYTES_PER_ENDPOINT",
    "CONFLICTING_ADVERTISEMENTS",
    "NODE_LABELED_EXCLUDE_BALANCERS",
    "NODE_NETWORK_UNAVAILABLE",
    "NOT_LOAD_BALANCER",
    "NOT_OWNER",
    "NO_ENDPOINTS",
    "NO_IP_ALLOCATED",
    "NO_LOCAL_ENDPOINTS",
    "NO_MATCHING_ADVERTISEMENT",
    "Advertisement",
    "NodePlan",
    "ServiceInput",
    "advertisements",
    "attributes_of",
    "has_healthy_endpoint",
    "implicit_slice",
    "link_bandwidth_of",
    "matching_advertisements",
    "node_advertisements",
    "parse_address",
    "peer_carries",
    "peer_matches_node",
    "peers_for_node",
    "plan_node",
    "ready_endpoints",
    "routes_per_peer",
    "should_announce",
]


@dataclass(frozen=True)
class Advertisement:
    """One prefix a node announces for a service (MetalLB's ``bgp.Advertisement``).

    ``peers`` are BGPPeer names; empty means every peer of the node.
    """

    prefix: Network
    attributes: Attributes
    peers: frozenset[str] = frozenset()

    def matches_peer(self, name: str) -> bool:
        """MetalLB's ``Advertisement.MatchesPeer``."""
        return not self.peers or name in self.peers


@dataclass(frozen=True)
class ServiceInput:
    """A service as the planner needs it: the Service (with its ingress), its pool and its EndpointSlices."""

    service: Service
    pool: Pool | None
    slices: tuple[EndpointSlice, ...] = ()


@dataclass(frozen=True)
class NodePlan:
    """Everything one node does over BGP.

    ``peers``: the BGPPeers whose nodeSelectors match the node (one session each). ``reasons``: per service key,
    None when the node announces it, else MetalLB's reason. ``by_service``: the announced advertisements.
    ``routes``: per peer name, the merged route table to hand to that peer's session.
    """

    node: str
    peers: tuple[Peer, ...] = ()
    reasons: Mapping[str, str | None] = field(default_factory=dict)
    by_service: Mapping[str, tuple[Advertisement, ...]] = field(default_factory=dict)
    routes: Mapping[str, Mapping[Network, Attributes]] = field(default_factory=dict)

    def entries(self, service_key: str) -> list[dict[str, object]]:
        """The ``ironlb plan`` entries of one service on this node: one per prefix, v4 first, by address.

        ``peers`` are the node's peers that receive the prefix; ``communities``/``localPref`` are what goes on
        the wire, i.e. merged with every other service and advertisement sharing the prefix (MetalLB merges
        identical prefixes). If peers get different attributes, the union is shown. ``linkBandwidth`` (bytes per
        second) only when the advertisement weighs by ready pods.
        """
        out: list[dict[str, object]] = []
        prefixes = sorted({ad.prefix for ad in self.by_service.get(service_key, ())}, key=sort_key)
        for prefix in prefixes:
            peers = sorted(name for name, table in self.routes.items() if prefix in table)
            attrs: Attributes | None = None
            for name in peers:
                a = self.routes[name][prefix]
                attrs = a if attrs is None else attrs.merge(a)
            if attrs is None:
                # No peer gets it (none selects this node, or the ads name other peers): show the service's intent.
                for other in self.by_service[service_key]:
                    if other.prefix == prefix:
                        attrs = other.attributes if attrs is None else attrs.merge(other.attributes)
            assert attrs is not None
            entry: dict[str, object] = {
                "node": self.node,
                "prefix": str(prefix),
                "peers": peers,
                "communities": community_strings(attrs),
                "localPref": attrs.local_pref,
            }
            if attrs.link_bandwidth is not None:  # ironlb's weighting by ready pods: bytes per second
                entry["linkBandwidth"] = attrs.link_bandwidth
            out.append(entry)
        return out


def community_strings(attrs: Attributes) -> list[str]:
    """``65000:100`` / ``large:1:2:3`` as in BGPAdvertisement, sorted."""
    texts = [str(Community((c,))) for c in attrs.communities]
    texts += [str(Community(lc)) for lc in attrs.large_communities]
    return sorted(texts)


def attributes_of(ad: BGPAdvertisement) -> Attributes:
    """The peer-independent route attributes of a BGPAdvertisement (localPref 0 means unset, as in MetalLB)."""
    std = tuple(c.value[0] for c in ad.communities if not c.is_large)
    large = tuple((c.value[0], c.value[1], c.value[2]) for c in ad.communities if c.is_large)
    return Attributes(ad.local_pref or None, std, large)


def peer_matches_node(peer: Peer, node: Node) -> bool:
    """A BGPPeer runs a session on a node when one of its nodeSelectors matches (none: every node)."""
    return any_matches(peer.node_selectors, node.labels)


def peers_for_node(config: Config, node: Node) -> tuple[Peer, ...]:
    """The BGPPeers this node keeps a session with, in name order."""
    return tuple(p for p in config.peers if peer_matches_node(p, node))


def node_advertisements(pool: Pool, node: Node) -> list[BGPAdvertisement]:
    """The pool's BGPAdvertisements whose nodeSelectors select the node (MetalLB's ``adv.Nodes[myNode]``)."""
    return [ad for ad in pool.bgp_advertisements if any_matches(ad.node_selectors, node.labels)]


def matching_advertisements(pool: Pool, svc: Service, node: Node) -> list[BGPAdvertisement]:
    """The node's advertisements whose serviceSelectors are empty or match the service."""
    return [ad for ad in node_advertisements(pool, node) if any_matches(ad.service_selectors, svc.labels)]


def has_healthy_endpoint(slices: Iterable[EndpointSlice], node: str | None = None) -> bool:
    """MetalLB's BGP ``hasHealthyEndpoint``: some endpoint with an address can serve (on ``node`` if given).

    Endpoints without addresses do not count. Since MetalLB v0.16.0 each endpoint counts on its own: the same
    address not serving in another slice (an IP reused by a new pod) no longer hides a serving endpoint.
    """
    return any(
        ep.addresses and ep.can_serve
        for s in slices
        for ep in s.endpoints
        if node is None or ep.node_name == node
    )


def ready_endpoints(slices: Iterable[EndpointSlice], node: str) -> int:
    """How many endpoints (pods) on ``node`` can serve, each judged as :func:`has_healthy_endpoint` does."""
    return sum(1 for s in slices for ep in s.endpoints if ep.node_name == node and ep.addresses and ep.can_serve)


def link_bandwidth_of(svc: Service, slices: Iterable[EndpointSlice], node: str) -> int | None:
    """The Link Bandwidth a node gives a weighted advertisement of ``svc``: :data:`BYTES_PER_ENDPOINT` per ready
    local endpoint with ``externalTrafficPolicy: Local``; None (no community) with ``Cluster``, where kube-proxy
    spreads the traffic over every endpoint whichever node receives it."""
    if svc.external_traffic_policy != "Local":
        return None
    return min(ready_endpoints(slices, node) * BYTES_PER_ENDPOINT, MAX_LINK_BANDWIDTH_INT)


def _prefix(ip: str, ad: BGPAdvertisement) -> Network:
    return _network(ip, ad.aggregation_length, ad.aggregation_length_v6)


@functools.lru_cache(maxsize=1 << 16)
def parse_address(ip: str) -> IPv4Address | IPv6Address:
    """``ipaddress.ip_address(ip)``, cached: a decision parses every Service IP twice (its pool, its prefix), and
    every decision again (at start-up the parser was ~15 % of a 1,000-Service BGP decision, issue 16). The
    addresses are immutable; an invalid string raises ``ip_address``'s error every time (errors are not cached)."""
    return ip_address(ip)


@functools.lru_cache(maxsize=1 << 16)
def _network(ip: str, length: int, length_v6: int) -> Network:
    """The prefix of ``ip`` at the aggregation length of its family. Cached (every decision asks again for every
    Service's IPs) and built from the address's integer rather than a ``"ip/length"`` string parsed again: at
    start-up this was a third of a 1,000-Service BGP decision (issue 16). Networks are immutable; an invalid
    string raises every time."""
    addr = parse_address(ip)
    net: IPv4Network | IPv6Network
    if addr.version == 4:
        net = IPv4Network((int(addr), length), strict=False)
    elif addr.scope_id is None:
        net = IPv6Network((int(addr), length_v6), strict=False)
    else:  # a zone index: kept as the string form keeps it
        net = ip_network(f"{addr}/{length_v6}", strict=False)
    return net


def _conflicting(ads: Sequence[BGPAdvertisement], pool: Pool) -> bool:
    """MetalLB's ``checkBGPAdvConflicts``: two of the service's ads on this node whose localPrefs may collide.

    Without serviceSelectors the config validation already refuses this; with them it can only be seen per
    service, so the service is not announced at all rather than with an arbitrary preference. As in MetalLB the
    aggregation lengths are compared per family of the pool, not per IP of the service.
    """
    return any(local_prefs_may_collide(a, b, pool.families) for i, a in enumerate(ads) for b in ads[i + 1 :])


def should_announce(
    svc: Service,
    pool: Pool | None,
    slices: Sequence[EndpointSlice],
    node: Node,
    *,
    ignore_exclude_lb: bool = False,
    node_known: bool = True,
) -> str | None:
    """MetalLB's BGP ``ShouldAnnounce`` for one node: None to announce, else the reason not to.

    ``node_known`` false: the cluster has no Node object of that name, so no advertisement selects it (MetalLB's
    ``adv.Nodes`` holds only the cluster's Nodes): ``notOwner``.
    """
    if not svc.is_load_balancer:
        return NOT_LOAD_BALANCER
    if not svc.ingress or pool is None:
        return NO_IP_ALLOCATED
    if not node_known or not node_advertisements(pool, node):
        return NOT_OWNER
    ads = matching_advertisements(pool, svc, node)
    if not ads:
        return NO_MATCHING_ADVERTISEMENT
    if _conflicting(ads, pool):
        return CONFLICTING_ADVERTISEMENTS
    if reason := node_state_reason(node, ignore_exclude_lb=ignore_exclude_lb):
        return reason
    if svc.external_traffic_policy == "Local":
        if not has_healthy_endpoint(slices, node.name):
            return NO_LOCAL_ENDPOINTS
    elif not has_healthy_endpoint(slices):
        return NO_ENDPOINTS
    return None


def advertisements(
    svc: Service, pool: Pool, node: Node, slices: Sequence[EndpointSlice] = ()
) -> tuple[Advertisement, ...]:
    """MetalLB's ``SetBalancer``: one advertisement per LB IP x advertisement of the node matching the service.

    An advertisement with ironlb's link-bandwidth annotation also carries :func:`link_bandwidth_of` ``slices``.
    """
    ads = matching_advertisements(pool, svc, node)
    bandwidth = link_bandwidth_of(svc, slices, node.name)
    out: list[Advertisement] = []
    for ip in svc.ingress:
        for ad in ads:
            attrs = attributes_of(ad)
            if ad.weight_by_endpoints and bandwidth is not None:
                attrs = replace(attrs, link_bandwidth=bandwidth)
            out.append(Advertisement(_prefix(ip, ad), attrs, frozenset(ad.peers)))
    return tuple(out)


def peer_carries(peer: Peer, prefix: Network) -> bool:
    """A session carries the family of its peer's address, or both with ``dualStackAddressFamily`` (FRR modes)."""
    if peer.dual_stack_address_family or not peer.address:
        return True
    return _version(peer.address) == prefix.version


@functools.lru_cache(maxsize=1024)
def _version(address: str) -> int:
    """A peer's address family (asked per prefix and peer at every decision)."""
    return ip_address(address).version


def routes_per_peer(ads: Iterable[Advertisement], peers: Iterable[Peer | str]) -> dict[str, dict[Network, Attributes]]:
    """Each peer's route table: the ads for it, identical prefixes merged (communities unioned).

    This merge is what announces an aggregated prefix (e.g. a /24) once for many services. Given ``Peer``
    values, a prefix only goes to peers whose session carries its family.
    """
    ads = list(ads)
    out: dict[str, dict[Network, Attributes]] = {}
    for peer in peers:
        name = peer if isinstance(peer, str) else peer.name
        table: dict[Network, Attributes] = {}
        for ad in ads:
            if not ad.matches_peer(name) or (not isinstance(peer, str) and not peer_carries(peer, ad.prefix)):
                continue
            prev = table.get(ad.prefix)
            table[ad.prefix] = ad.attributes if prev is None else prev.merge(ad.attributes)
        out[name] = table
    return out


def implicit_slice(svc: Service, nodes: Iterable[str]) -> EndpointSlice:
    """Standalone mode: a Service without EndpointSlices is served on every node (one ready endpoint each)."""
    from ironlb.cluster.objects import Endpoint

    eps = tuple(Endpoint((f"implicit:{n}",), n) for n in nodes)
    return EndpointSlice(svc.namespace, f"{svc.name}-implicit", svc.name, eps)


def plan_node(
    config: Config,
    node: Node,
    services: Mapping[str, ServiceInput],
    *,
    ignore_exclude_lb: bool = False,
    node_known: bool = True,
) -> NodePlan:
    """The sessions and route tables of ``node`` for all ``services`` (keyed ``namespace/name``).

    ``node_known`` false (no Node object of that name): the sessions still run (peers without nodeSelectors),
    but nothing is announced, as in MetalLB.
    """
    peers = peers_for_node(config, node)
    reasons: dict[str, str | None] = {}
    by_service: dict[str, tuple[Advertisement, ...]] = {}
    for key, item in services.items():
        reason = should_announce(
            item.service, item.pool, item.slices, node, ignore_exclude_lb=ignore_exclude_lb, node_known=node_known
        )
        reasons[key] = reason
        if reason is None and item.pool is not None:
            by_service[key] = advertisements(item.service, item.pool, node, item.slices)
    all_ads = (ad for ads in by_service.values() for ad in ads)
    routes = routes_per_peer(all_ads, peers)
    return NodePlan(node.name, peers, reasons, by_service, routes)
