"""ICMPv6 Router Solicitation and Router Advertisement bodies (RFC 4861 sections 4.1, 4.2, 6.1).

Unnumbered BGP peering finds its neighbour the way FRR does for ``neighbor IFNAME interface``: the router on the
link sends RAs, their source is its link-local address; and it learns ours from the RAs we send. Only the ICMPv6
message is coded here (a raw ICMPv6 socket adds the IPv6 header and the kernel fills in the checksum); the caller
passes the packet's source and hop limit to :func:`check_router_message` for the RFC 4861 6.1 validity checks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

ICMPV6_ROUTER_SOLICITATION = 133
ICMPV6_ROUTER_ADVERTISEMENT = 134
ND_HOP_LIMIT = 255
"""Every ND message is sent with hop limit 255, and one received with less came from off-link."""
OPT_SOURCE_LLADDR = 1
MAX_OPTIONS = 64
"""More options than any RA carries; a message with more is refused rather than walked."""

_RA = struct.Struct("!BBHBBHII")
_RS = struct.Struct("!BBHI")


class RouterMessageError(ValueError):
    """The bytes are not a valid RS or RA (the message says why)."""


@dataclass(frozen=True)
class RouterAdvertisement:
    """An RA. ironlb sends ``router_lifetime`` 0: a neighbour to peer with, never anybody's default router."""

    router_lifetime: int = 0
    cur_hop_limit: int = 0
    flags: int = 0
    reachable_time: int = 0
    retrans_timer: int = 0
    source_lladdr: bytes | None = None


@dataclass(frozen=True)
class RouterSolicitation:
    """An RS: asks the routers on the link for an RA now rather than at their next interval."""

    source_lladdr: bytes | None = None


RouterMessage = RouterAdvertisement | RouterSolicitation


def _slla(mac: bytes | None) -> bytes:
    if mac is None:
        return b""
    if len(mac) != 6:
        raise ValueError(f"link-layer address must be 6 bytes, not {len(mac)}")
    return bytes((OPT_SOURCE_LLADDR, 1)) + mac


def encode_router_message(msg: RouterMessage) -> bytes:
    """The ICMPv6 message, checksum left 0 (the kernel computes it on a raw ICMPv6 socket)."""
    if isinstance(msg, RouterSolicitation):
        return _RS.pack(ICMPV6_ROUTER_SOLICITATION, 0, 0, 0) + _slla(msg.source_lladdr)
    head = _RA.pack(
        ICMPV6_ROUTER_ADVERTISEMENT,
        0,
        0,
        msg.cur_hop_limit,
        msg.flags,
        msg.router_lifetime,
        msg.reachable_time,
        msg.retrans_timer,
    )
    return head + _slla(msg.source_lladdr)


def _options(data: bytes) -> bytes | None:
    """Walk the ND options; the source link-layer address if one is there. Raises on a malformed option."""
    slla = None
    i = 0
    for _ in range(MAX_OPTIONS):
        if i == len(data):
            return slla
        if i + 2 > len(data):
            raise RouterMessageError("truncated option")
        kind, units = data[i], data[i + 1]
        if units == 0:
            raise RouterMessageError("option of length 0")
        end = i + units * 8
        if end > len(data):
            raise RouterMessageError("option overruns the message")
        if kind == OPT_SOURCE_LLADDR and slla is None:
            slla = bytes(data[i + 2 : end])
        i = end
    if i != len(data):
        raise RouterMessageError(f"more than {MAX_OPTIONS} options")
    return slla


def decode_router_message(data: bytes) -> RouterMessage:
    """An RS or RA from its ICMPv6 bytes; :class:`RouterMessageError` for anything else or malformed."""
    if len(data) < 8:
        raise RouterMessageError(f"{len(data)} bytes is too short for an RS or RA")
    kind, code = data[0], data[1]
    if code != 0:
        raise RouterMessageError(f"ICMPv6 code {code} (must be 0)")
    if kind == ICMPV6_ROUTER_SOLICITATION:
        return RouterSolicitation(_options(data[_RS.size :]))
    if kind != ICMPV6_ROUTER_ADVERTISEMENT:
        raise RouterMessageError(f"ICMPv6 type {kind} is neither RS nor RA")
    if len(data) < _RA.size:
        raise RouterMessageError(f"{len(data)} bytes is too short for an RA")
    _t, _c, _sum, hop, flags, lifetime, reachable, retrans = _RA.unpack_from(data)
    return RouterAdvertisement(lifetime, hop, flags, reachable, retrans, _options(data[_RA.size :]))


def check_router_message(source: IPv6Address, hop_limit: int | None, data: bytes) -> RouterMessage:
    """:func:`decode_router_message` plus RFC 4861 6.1.1/6.1.2: hop limit 255 (from on-link), and an RA from a
    link-local source (its source *is* the neighbour we peer with)."""
    if hop_limit is not None and hop_limit != ND_HOP_LIMIT:
        raise RouterMessageError(f"hop limit {hop_limit}: not from this link")
    msg = decode_router_message(data)
    if isinstance(msg, RouterAdvertisement) and not source.is_link_local:
        raise RouterMessageError(f"RA from {source}, not a link-local address")
    return msg


__all__ = [
    "ICMPV6_ROUTER_ADVERTISEMENT",
    "ICMPV6_ROUTER_SOLICITATION",
    "ND_HOP_LIMIT",
    "RouterAdvertisement",
    "RouterMessage",
    "RouterMessageError",
    "RouterSolicitation",
    "check_router_message",
    "decode_router_message",
    "encode_router_message",
]
