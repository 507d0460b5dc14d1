"""Per-peer session configuration shared by the FSM and the asyncio shell.

Validated on construction so a bad peer fails when the config is loaded, not
when the first OPEN goes out.  The field names follow BGPPeer v1beta2.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address

from ironlb.config.ifname import interface_name_problem

from .wire import AS_TRANS, IPV4_UNICAST, IPV6_UNICAST, Address, Family

BGP_PORT = 179
"""BGP's TCP port (RFC 4271): where sessions dial and the speaker listens by default."""

_U32 = 0xFFFFFFFF


class DynamicASN(StrEnum):
    """Peer ASN learned from its OPEN instead of configured (BGPPeer ``dynamicASN``)."""

    ANY = "any"
    INTERNAL = "internal"
    EXTERNAL = "external"


def router_id_from_node_name(node_name: str) -> IPv4Address:
    """MetalLB's last-resort router ID: crc32 of the node name, little-endian bytes."""
    return IPv4Address(zlib.crc32(node_name.encode()).to_bytes(4, "little"))


@dataclass(frozen=True)
class PeerConfig:
    """One BGP neighbor as seen from this node.

    ``hold_time`` 0 disables keepalives and the hold timer (RFC 4271 allows it).
    ``keepalive_time`` None means hold/3.  ``local_asn`` (BGPPeer ``localASN``) replaces ``my_asn`` on this
    session only, as FRR's ``local-as N no-prepend replace-as``: in the OPEN and in AS_PATH.
    ``connect_time`` caps the reconnect backoff.  ``passive``: never dial, only accept the peer's connection
    (inbound connections from the peer are accepted either way); ``inbound_open_time`` bounds how long an
    accepted connection may stay silent before its OPEN.  ``next_hop_ipv4``/``next_hop_ipv6`` override the
    default next hop (the local address of the TCP connection), which is needed to announce a family other than
    the session's own transport family.
    """

    my_asn: int
    peer_asn: int | DynamicASN
    peer_address: Address
    peer_port: int = BGP_PORT
    router_id: IPv4Address | None = None
    hold_time: int = 90
    keepalive_time: float | None = None
    connect_time: float = 120.0
    connect_timeout: float = 10.0
    open_hold_time: float = 240.0
    inbound_open_time: float = 30.0
    graceful_restart: bool = False
    restart_time: int = 120
    families: frozenset[Family] = field(default_factory=lambda: frozenset({IPV4_UNICAST, IPV6_UNICAST}))
    source_address: Address | None = None
    password: str | None = None
    ebgp_multihop: bool = False
    next_hop_ipv4: IPv4Address | None = None
    next_hop_ipv6: IPv6Address | None = None
    local_asn: int | None = None
    passive: bool = False
    node_name: str = ""
    name: str = ""
    interface: str = ""
    """Unnumbered peering (BGPPeer ``interface``): the peer is whoever advertises itself as a router on this
    link, reached at its IPv6 link-local address; ``peer_address`` is then only a placeholder (``::``). The
    session offers the RFC 8950 extended next hop so IPv4 prefixes can carry an IPv6 next hop."""

    def __post_init__(self) -> None:
        if isinstance(self.peer_address, str):
            object.__setattr__(self, "peer_address", ip_address(self.peer_address))
        if not 1 <= self.my_asn <= _U32:
            raise ValueError(f"invalid local ASN {self.my_asn}")
        if not isinstance(self.peer_asn, DynamicASN) and not 1 <= self.peer_asn <= _U32:
            raise ValueError(f"invalid peer ASN {self.peer_asn}")
        if self.hold_time != 0 and not 3 <= self.hold_time <= 0xFFFF:
            raise ValueError(f"invalid hold time {self.hold_time}: must be 0 or >=3s")
        if self.keepalive_time is not None:
            if self.keepalive_time <= 0:
                raise ValueError(f"invalid keepaliveTime {self.keepalive_time}")
            if self.hold_time and self.keepalive_time >= self.hold_time:
                raise ValueError(
                    f"invalid keepaliveTime {self.keepalive_time}, must be lower than holdTime {self.hold_time}"
                )
        if not 0 <= self.restart_time <= 4095:
            raise ValueError(f"invalid graceful restart time {self.restart_time}")
        if not 1 <= self.peer_port <= 0xFFFF:
            raise ValueError(f"invalid peer port {self.peer_port}")
        if min(self.connect_time, self.connect_timeout, self.open_hold_time, self.inbound_open_time) <= 0:
            raise ValueError("connect_time, connect_timeout, open_hold_time and inbound_open_time must be positive")
        if not self.families or not self.families <= {IPV4_UNICAST, IPV6_UNICAST}:
            raise ValueError(f"unsupported address families {sorted(self.families)}")
        if self.password is not None and len(self.password.encode()) > 80:
            raise ValueError("TCP MD5 password longer than 80 bytes")
        if self.my_asn == AS_TRANS:
            raise ValueError("AS_TRANS (23456) cannot be used as local ASN")
        if self.local_asn is not None and (not 1 <= self.local_asn <= _U32 or self.local_asn == AS_TRANS):
            raise ValueError(f"invalid localASN {self.local_asn}")
        if self.interface:
            problem = interface_name_problem(self.interface)
            if problem:
                raise ValueError(f"interface {self.interface!r}: {problem}")

    @property
    def session_asn(self) -> int:
        """The ASN this session presents: ``local_asn`` when set, else ``my_asn``."""
        return self.local_asn if self.local_asn is not None else self.my_asn

    @property
    def static_ibgp(self) -> bool | None:
        """True/False when iBGP-ness is known from config alone, None for dynamic ANY."""
        if isinstance(self.peer_asn, DynamicASN):
            if self.peer_asn == DynamicASN.ANY:
                return None
            return self.peer_asn == DynamicASN.INTERNAL
        return self.peer_asn == self.session_asn

    @property
    def label(self) -> str:
        """``addr:port`` as MetalLB's metric label ``peer`` (``interface:port`` for an unnumbered peer)."""
        if self.interface:
            return f"{self.interface}:{self.peer_port}"
        addr = f"[{self.peer_address}]" if self.peer_address.version == 6 else str(self.peer_address)
        return f"{addr}:{self.peer_port}"
