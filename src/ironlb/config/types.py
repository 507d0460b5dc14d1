"""The validated configuration: one immutable value that the controller and the speakers act on.

Built from the ``metallb.io`` resources (or the legacy ConfigMap) by :func:`ironlb.config.build.build_config`.
Equal input gives an equal value, so "did the config change?" is ``old == new`` (MetalLB: reflect.DeepEqual).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from ironlb.cluster.labels import LabelSelector
from ironlb.config.bfdprofile import BFD_AUTH_ANNOTATION as BFD_AUTH_ANNOTATION  # re-exported
from ironlb.config.bfdprofile import BFD_AUTH_TYPES as BFD_AUTH_TYPES
from ironlb.config.bfdprofile import BFDAuthentication as BFDAuthentication
from ironlb.config.bfdprofile import BFDProfile as BFDProfile

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, order=True)
class Community:
    """A BGP community: standard ``A:B`` (a 32-bit value) or large ``large:A:B:C``."""

    value: tuple[int, ...]  # (u32,) for standard, (a, b, c) for large

    @property
    def is_large(self) -> bool:
        return len(self.value) == 3

    def __str__(self) -> str:
        if self.is_large:
            return "large:{}:{}:{}".format(*self.value)
        v = self.value[0]
        return f"{v >> 16}:{v & 0xFFFF}"


@dataclass(frozen=True)
class ServiceAllocation:
    """``spec.serviceAllocation`` with namespaceSelectors already resolved against the Namespaces."""

    priority: int = 0
    namespaces: frozenset[str] = frozenset()
    service_selectors: tuple[LabelSelector, ...] = ()


@dataclass(frozen=True)
class PreferredNode:
    weight: int
    preference: LabelSelector


@dataclass(frozen=True)
class L2Advertisement:
    name: str
    node_selectors: tuple[LabelSelector, ...] = ()  # empty: every node
    interfaces: tuple[str, ...] = ()  # empty: all interfaces
    service_selectors: tuple[LabelSelector, ...] = ()
    preferred_nodes: tuple[PreferredNode, ...] = ()

    @property
    def all_interfaces(self) -> bool:
        return not self.interfaces


@dataclass(frozen=True)
class BGPAdvertisement:
    name: str
    aggregation_length: int = 32
    aggregation_length_v6: int = 128
    local_pref: int = 0  # 0: not set (MetalLB's uint32 zero value)
    communities: frozenset[Community] = frozenset()
    node_selectors: tuple[LabelSelector, ...] = ()
    peers: tuple[str, ...] = ()  # BGPPeer names; empty: all peers
    service_selectors: tuple[LabelSelector, ...] = ()
    # ironlb's extension (annotation LINK_BANDWIDTH_ANNOTATION): the Link Bandwidth extended community on the
    # prefixes, proportional to the node's ready local endpoints. MetalLB ignores it.
    weight_by_endpoints: bool = False


# The BGPAdvertisement annotation of ironlb's own that turns on weighting by ready local endpoints.
LINK_BANDWIDTH_ANNOTATION = "ironlb.io/link-bandwidth"
LINK_BANDWIDTH_READY_ENDPOINTS = "ready-endpoints"


def local_prefs_may_collide(a: BGPAdvertisement, b: BGPAdvertisement, families: frozenset[int]) -> bool:
    """Two advertisements of one pool could give one prefix two LOCAL_PREFs (MetalLB's
    ``BGPAdvertisementsHaveCompatibleLocalPref`` before its node check): their localPrefs differ, the aggregation
    lengths do not tell their prefixes apart, and they share a peer.

    The lengths are compared per family the pool has (``families``), not per IP: in a dual-stack pool only
    different v4 *and* v6 lengths keep two ads apart, even for a Service with one family.
    """
    if a.local_pref == b.local_pref or not families:
        return False
    v4_differs = a.aggregation_length != b.aggregation_length
    v6_differs = a.aggregation_length_v6 != b.aggregation_length_v6
    if (v4_differs and 6 not in families) or (v6_differs and 4 not in families) or (v4_differs and v6_differs):
        return False
    return not (a.peers and b.peers and not set(a.peers) & set(b.peers))


@dataclass(frozen=True)
class Pool:
    name: str
    cidrs: tuple[IPNetwork, ...]  # in spec order; ranges already summarised into CIDRs
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    service_allocation: ServiceAllocation | None = None
    l2_advertisements: tuple[L2Advertisement, ...] = ()
    bgp_advertisements: tuple[BGPAdvertisement, ...] = ()

    @cached_property
    def families(self) -> frozenset[int]:
        return frozenset(c.version for c in self.cidrs)

    @cached_property
    def ranges(self) -> tuple[tuple[int, int, int], ...]:
        """(version, first, last) of each CIDR as integers, in spec order."""
        return tuple((c.version, int(c.network_address), int(c.broadcast_address)) for c in self.cidrs)

    def contains(self, ip: IPAddress) -> bool:
        """Whether ``ip`` is allocatable from this pool (MetalLB's poolFor, honouring avoidBuggyIPs)."""
        if self.avoid_buggy_ips and is_buggy(ip):
            return False
        n, version = int(ip), ip.version
        return any(v == version and lo <= n <= hi for v, lo, hi in self.ranges)


def is_buggy(ip: IPAddress) -> bool:
    """IPv4 addresses ending in .0 or .255 confuse the smurf protection of some CPE firmwares."""
    return ip.version == 4 and int(ip) & 0xFF in (0, 255)


@dataclass(frozen=True)
class SecretRef:
    name: str
    namespace: str = ""


@dataclass(frozen=True)
class Peer:
    """A BGPPeer (v1beta2 shape) after validation; durations in seconds."""

    name: str
    my_asn: int
    peer_asn: int = 0
    dynamic_asn: str = ""  # "", "internal" or "external"
    address: str = ""  # peer IP (canonical text) or "" for an unnumbered peer
    interface: str = ""
    source_address: str = ""
    port: int = 179
    hold_time: float | None = None  # None: the default (90 s)
    keepalive_time: float | None = None
    connect_time: float | None = None
    router_id: str = ""
    node_selectors: tuple[LabelSelector, ...] = ()
    password: str = ""
    password_secret: SecretRef | None = None
    bfd_profile: str = ""
    ebgp_multihop: bool = False
    enable_graceful_restart: bool = False
    local_asn: int = 0
    vrf: str = ""
    dual_stack_address_family: bool = False
    # ironlb's extension (annotation PASSIVE_ANNOTATION): never dial, wait for the peer to connect. MetalLB ignores it.
    passive: bool = False

    @property
    def is_ibgp(self) -> bool:
        return self.dynamic_asn == "internal" or (self.peer_asn != 0 and self.peer_asn == self.my_asn)


# The BGPPeer annotation of ironlb's own that makes the session passive ("true" or "false").
PASSIVE_ANNOTATION = "ironlb.io/passive"


@dataclass(frozen=True)
class Config:
    pools: tuple[Pool, ...] = ()  # sorted by name
    peers: tuple[Peer, ...] = ()  # sorted by name
    bfd_profiles: tuple[BFDProfile, ...] = ()  # sorted by name
    communities: tuple[tuple[str, Community], ...] = field(default=())  # aliases, sorted by name

    @cached_property
    def pools_by_name(self) -> Mapping[str, Pool]:
        return {p.name: p for p in self.pools}

    @cached_property
    def peers_by_name(self) -> Mapping[str, Peer]:
        return {p.name: p for p in self.peers}

    def pools_for_namespace(self, namespace: str) -> tuple[Pool, ...]:
        """Pools pinned to a namespace (MetalLB's Pools.ByNamespace), in name order."""
        return tuple(
            p for p in self.pools if p.service_allocation is not None and namespace in p.service_allocation.namespaces
        )

    @cached_property
    def pools_by_service_selector(self) -> tuple[Pool, ...]:
        """Pools pinned by serviceSelectors (MetalLB's Pools.ByServiceSelector), in name order."""
        return tuple(
            p for p in self.pools if p.service_allocation is not None and p.service_allocation.service_selectors
        )
