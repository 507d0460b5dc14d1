"""Turning an Adj-RIB-Out delta into as few UPDATE messages as 4096 bytes allow.

Separate from the FSM so packing can be tested (and benchmarked) on its own.
Prefixes with identical :class:`Attributes` share one set of path attributes;
each group fills messages greedily.  Because every NLRI entry is at most 17
bytes, greedy filling wastes less than one entry per message, which is the
minimum for equal-size prefixes such as /32s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from .attributes import Attributes
from .wire import (
    AFI_IPV4,
    AFI_IPV6,
    AS_SEQUENCE,
    HEADER_LEN,
    IPV4_UNICAST,
    IPV6_UNICAST,
    MAX_MESSAGE_LEN,
    ORIGIN_IGP,
    SAFI_UNICAST,
    Family,
    MPReach,
    MPUnreach,
    Network,
    UpdateMessage,
    encode_update,
    family_of,
    prefix_size,
)
from .wire.extcommunity import link_bandwidth

DEFAULT_LOCAL_PREF = 100


@dataclass(frozen=True)
class PathContext:
    """The session facts that turn peer-independent Attributes into wire attributes."""

    local_asn: int
    ibgp: bool
    four_octet_as: bool
    next_hop_ipv4: IPv4Address | None
    next_hop_ipv6: IPv6Address | None
    next_hop_ipv6_link_local: IPv6Address | None = None
    """Sent after the global one (or alone) on a session over link-local addresses (RFC 2545 section 3)."""
    ipv4_over_ipv6: bool = False
    """RFC 8950 negotiated: IPv4 prefixes go in MP_REACH_NLRI with the IPv6 next hops (unnumbered peering)."""

    @property
    def ipv6_next_hops(self) -> tuple[IPv6Address, ...]:
        """Global then link-local, whichever exist: a 16- or 32-byte MP_REACH next hop."""
        return tuple(h for h in (self.next_hop_ipv6, self.next_hop_ipv6_link_local) if h is not None)

    def can_announce(self, family: Family) -> bool:
        """A family is announceable only with a next hop it can carry."""
        if family == IPV4_UNICAST:
            return self.next_hop_ipv4 is not None or (self.ipv4_over_ipv6 and bool(self.ipv6_next_hops))
        return bool(self.ipv6_next_hops)


def sort_key(net: Network) -> tuple[int, int, int]:
    """Stable order: v4 before v6, then by address and length."""
    return (net.version, int(net.network_address), net.prefixlen)


def _template(family: Family, attrs: Attributes, ctx: PathContext) -> UpdateMessage:
    as_path = () if ctx.ibgp else ((AS_SEQUENCE, (ctx.local_asn,)),)
    local_pref = (attrs.local_pref if attrs.local_pref is not None else DEFAULT_LOCAL_PREF) if ctx.ibgp else None
    mp_reach = None
    next_hop = None
    if family == IPV6_UNICAST:
        assert ctx.ipv6_next_hops
        mp_reach = MPReach(AFI_IPV6, SAFI_UNICAST, ctx.ipv6_next_hops)
    elif ctx.ipv4_over_ipv6 and ctx.ipv6_next_hops:
        mp_reach = MPReach(AFI_IPV4, SAFI_UNICAST, ctx.ipv6_next_hops)
    else:
        next_hop = ctx.next_hop_ipv4
    extended: tuple[int, ...] = ()
    if attrs.link_bandwidth is not None:
        extended = (link_bandwidth(ctx.local_asn, float(attrs.link_bandwidth)),)
    return UpdateMessage(
        origin=ORIGIN_IGP,
        as_path=as_path,
        next_hop=next_hop,
        local_pref=local_pref,
        communities=attrs.communities,
        large_communities=attrs.large_communities,
        extended_communities=extended,
        mp_reach=mp_reach,
    )


def _chunks(prefixes: Sequence[Network], room: int) -> Iterable[list[Network]]:
    chunk: list[Network] = []
    used = 0
    for p in prefixes:
        size = prefix_size(p)
        if chunk and used + size > room:
            yield chunk
            chunk, used = [], 0
        chunk.append(p)
        used += size
    if chunk:
        yield chunk


def pack_announcements(family: Family, attrs: Attributes, prefixes: Iterable[Network], ctx: PathContext) -> list[bytes]:
    """UPDATEs announcing ``prefixes`` (all of ``family``) with ``attrs``.

    Raises ValueError if the attributes alone leave no room for a prefix.
    """
    ordered = sorted(prefixes, key=sort_key)
    if not ordered:
        return []
    tmpl = _template(family, attrs, ctx)
    base = len(encode_update(tmpl, four_octet_as=ctx.four_octet_as))
    # MP_REACH switches to the 4-byte extended attribute header once NLRI is added.
    room = MAX_MESSAGE_LEN - base - (1 if tmpl.mp_reach is not None else 0)
    if room < 17:
        raise ValueError("path attributes too large to fit any prefix in a 4096-byte UPDATE")
    out: list[bytes] = []
    for chunk in _chunks(ordered, room):
        if tmpl.mp_reach is not None:
            reach = MPReach(tmpl.mp_reach.afi, tmpl.mp_reach.safi, tmpl.mp_reach.next_hops, tuple(chunk))
            msg = replace(tmpl, mp_reach=reach)
        else:
            msg = replace(tmpl, nlri=tuple(p for p in chunk if isinstance(p, IPv4Network)))
        out.append(encode_update(msg, four_octet_as=ctx.four_octet_as))
    return out


def pack_withdrawals(prefixes: Iterable[Network]) -> list[bytes]:
    """UPDATEs withdrawing ``prefixes``: IPv4 in Withdrawn Routes, IPv6 in MP_UNREACH_NLRI."""
    items = list(prefixes)
    v4 = sorted((p for p in items if p.version == 4), key=sort_key)
    v6 = sorted((p for p in items if p.version == 6), key=sort_key)
    out: list[bytes] = []
    # Body: withdrawn length (2) + withdrawn + attribute length (2).
    room_v4 = MAX_MESSAGE_LEN - HEADER_LEN - 4
    for chunk in _chunks(v4, room_v4):
        out.append(encode_update(UpdateMessage(withdrawn=tuple(p for p in chunk if isinstance(p, IPv4Network)))))
    # Body: 2 + 2 + extended attribute header (4) + AFI/SAFI (3).
    room_v6 = MAX_MESSAGE_LEN - HEADER_LEN - 4 - 4 - 3
    for chunk in _chunks(v6, room_v6):
        unreach = MPUnreach(AFI_IPV6, SAFI_UNICAST, tuple(p for p in chunk if isinstance(p, IPv6Network)))
        out.append(encode_update(UpdateMessage(mp_unreach=unreach)))
    return out


def group_by_attributes(routes: Mapping[Network, Attributes]) -> dict[tuple[Family, Attributes], list[Network]]:
    """Bucket prefixes by (family, attributes) so each bucket shares path attributes."""
    groups: dict[tuple[Family, Attributes], list[Network]] = {}
    for prefix, attrs in routes.items():
        groups.setdefault((family_of(prefix), attrs), []).append(prefix)
    return groups


def _group_order(key: tuple[Family, Attributes]) -> tuple[object, ...]:
    family, attrs = key
    lp = -1 if attrs.local_pref is None else attrs.local_pref
    bw = -1 if attrs.link_bandwidth is None else attrs.link_bandwidth
    return (family, lp, attrs.communities, attrs.large_communities, bw)


def build_announcements(routes: Mapping[Network, Attributes], ctx: PathContext) -> tuple[list[bytes], list[Network]]:
    """UPDATEs for all ``routes``; also returns prefixes that could not be encoded."""
    out: list[bytes] = []
    failed: list[Network] = []
    groups = group_by_attributes(routes)
    for key in sorted(groups, key=_group_order):
        family, attrs = key
        try:
            out.extend(pack_announcements(family, attrs, groups[key], ctx))
        except ValueError:
            failed.extend(groups[key])
    return out, failed


__all__ = [
    "DEFAULT_LOCAL_PREF",
    "PathContext",
    "build_announcements",
    "group_by_attributes",
    "pack_announcements",
    "pack_withdrawals",
    "sort_key",
]
