"""Ethernet + IPv6 + ICMPv6 Neighbor Solicitation / Advertisement codec (RFC 4861)
(the responder's answer is :func:`ironlb.layer2.fsm.decide_ndp`).

Only NS and NA without IPv6 extension headers are understood; that is how every
stack sends them, and anything else is dropped with :class:`NdpError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from ironlb.layer2.wire.ethernet import (
    ETH_P_IPV6,
    MAC_LEN,
    FrameError,
    build_ethernet,
    check_mac,
    parse_ethertype,
)

IPPROTO_ICMPV6 = 58
ICMPV6_NEIGHBOR_SOLICITATION = 135
ICMPV6_NEIGHBOR_ADVERTISEMENT = 136
OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
NDP_HOP_LIMIT = 255

IPV6_HEADER_LEN = 40
_NDP_BODY_LEN = 24  # type, code, checksum, flags/reserved, target
_IPV6 = struct.Struct("!IHBB16s16s")
_NA_ROUTER = 0x80000000
_NA_SOLICITED = 0x40000000
_NA_OVERRIDE = 0x20000000

ALL_NODES = IPv6Address("ff02::1")
UNSPECIFIED = IPv6Address("::")
_SOLICITED_NODE_PREFIX = int(IPv6Address("ff02::1:ff00:0"))


class NdpError(FrameError):
    """The frame is not a well-formed Ethernet/IPv6 NS or NA."""


@dataclass(frozen=True, slots=True)
class NeighborSolicitation:
    """An NS with its Ethernet and IPv6 addressing."""

    eth_dst: bytes
    eth_src: bytes
    src: IPv6Address
    dst: IPv6Address
    target: IPv6Address
    source_lladdr: bytes | None = None
    hop_limit: int = NDP_HOP_LIMIT


@dataclass(frozen=True, slots=True)
class NeighborAdvertisement:
    """An NA with its Ethernet and IPv6 addressing."""

    eth_dst: bytes
    eth_src: bytes
    src: IPv6Address
    dst: IPv6Address
    target: IPv6Address
    target_lladdr: bytes | None = None
    router: bool = False
    solicited: bool = False
    override: bool = False
    hop_limit: int = NDP_HOP_LIMIT


NdpMessage = NeighborSolicitation | NeighborAdvertisement


def solicited_node_address(ip: IPv6Address) -> IPv6Address:
    """ff02::1:ffXX:XXXX, the group a node joins to hear NS for ``ip``."""
    return IPv6Address(_SOLICITED_NODE_PREFIX | (int(ip) & 0xFFFFFF))


def multicast_mac(group: IPv6Address) -> bytes:
    """33:33 followed by the low 32 bits of an IPv6 multicast address (RFC 2464)."""
    if not group.is_multicast:
        raise NdpError(f"{group} is not a multicast address")
    return b"\x33\x33" + group.packed[12:]


def icmpv6_checksum(src: IPv6Address, dst: IPv6Address, icmp: bytes) -> int:
    """Internet checksum over the IPv6 pseudo-header and the ICMPv6 message.

    ``icmp`` must have its checksum field zeroed when computing, or kept when
    verifying (the result is then 0 for a valid message).
    """
    data = src.packed + dst.packed + struct.pack("!I3xB", len(icmp), IPPROTO_ICMPV6) + icmp
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _parse_lladdr_options(options: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    offset = 0
    while offset < len(options):
        if len(options) - offset < 2:
            raise NdpError("truncated NDP option header")
        opt_type, opt_len = options[offset], options[offset + 1]
        if opt_len == 0:
            raise NdpError("NDP option with length 0")  # RFC 4861 4.6: must drop
        end = offset + opt_len * 8
        if end > len(options):
            raise NdpError("NDP option runs past the end of the message")
        if opt_type in (OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR) and opt_type not in found:
            found[opt_type] = bytes(options[offset + 2 : offset + 2 + MAC_LEN])
        offset = end
    return found


def parse_ndp(frame: bytes, *, verify_checksum: bool = True) -> NdpMessage:
    """Parse an Ethernet frame carrying an ICMPv6 NS or NA."""
    header, payload = parse_ethertype(frame, ETH_P_IPV6, IPV6_HEADER_LEN, NdpError, "IPv6", "IPv6 packet")
    vtf, payload_len, next_header, hop_limit, raw_src, raw_dst = _IPV6.unpack_from(payload)
    if vtf >> 28 != 6:
        raise NdpError(f"IP version {vtf >> 28} is not 6")
    if next_header != IPPROTO_ICMPV6:
        raise NdpError(f"next header {next_header} is not ICMPv6")
    if IPV6_HEADER_LEN + payload_len > len(payload):
        raise NdpError("IPv6 payload length exceeds the frame")
    icmp = payload[IPV6_HEADER_LEN : IPV6_HEADER_LEN + payload_len]
    if len(icmp) < _NDP_BODY_LEN:
        raise NdpError(f"ICMPv6 message too short for NS/NA: {len(icmp)} bytes")
    icmp_type, code = icmp[0], icmp[1]
    if icmp_type not in (ICMPV6_NEIGHBOR_SOLICITATION, ICMPV6_NEIGHBOR_ADVERTISEMENT):
        raise NdpError(f"ICMPv6 type {icmp_type} is not NS/NA")
    if code != 0:
        raise NdpError(f"ICMPv6 code {code} is not 0")
    src, dst = IPv6Address(raw_src), IPv6Address(raw_dst)
    if verify_checksum and icmpv6_checksum(src, dst, icmp) != 0:
        raise NdpError("bad ICMPv6 checksum")
    flags = int.from_bytes(icmp[4:8], "big")
    target = IPv6Address(bytes(icmp[8:24]))
    options = _parse_lladdr_options(icmp[_NDP_BODY_LEN:])
    if icmp_type == ICMPV6_NEIGHBOR_SOLICITATION:
        return NeighborSolicitation(
            eth_dst=header.dst,
            eth_src=header.src,
            src=src,
            dst=dst,
            target=target,
            source_lladdr=options.get(OPT_SOURCE_LLADDR),
            hop_limit=hop_limit,
        )
    return NeighborAdvertisement(
        eth_dst=header.dst,
        eth_src=header.src,
        src=src,
        dst=dst,
        target=target,
        target_lladdr=options.get(OPT_TARGET_LLADDR),
        router=bool(flags & _NA_ROUTER),
        solicited=bool(flags & _NA_SOLICITED),
        override=bool(flags & _NA_OVERRIDE),
        hop_limit=hop_limit,
    )


def _lladdr_option(opt_type: int, mac: bytes) -> bytes:
    return bytes((opt_type, 1)) + check_mac(mac, "link-layer address option")


def build_ndp(message: NdpMessage) -> bytes:
    """Serialise an NS or NA into an Ethernet frame with a correct ICMPv6 checksum."""
    if not 0 <= message.hop_limit <= 255:
        raise NdpError(f"invalid hop limit {message.hop_limit}")
    if isinstance(message, NeighborSolicitation):
        icmp_type, flags = ICMPV6_NEIGHBOR_SOLICITATION, 0
        options = b"" if message.source_lladdr is None else _lladdr_option(OPT_SOURCE_LLADDR, message.source_lladdr)
    else:
        icmp_type = ICMPV6_NEIGHBOR_ADVERTISEMENT
        flags = (
            (_NA_ROUTER if message.router else 0)
            | (_NA_SOLICITED if message.solicited else 0)
            | (_NA_OVERRIDE if message.override else 0)
        )
        options = b"" if message.target_lladdr is None else _lladdr_option(OPT_TARGET_LLADDR, message.target_lladdr)
    unsummed = struct.pack("!BBHI16s", icmp_type, 0, 0, flags, message.target.packed) + options
    checksum = icmpv6_checksum(message.src, message.dst, unsummed)
    icmp = unsummed[:2] + checksum.to_bytes(2, "big") + unsummed[4:]
    ip_header = _IPV6.pack(
        6 << 28, len(icmp), IPPROTO_ICMPV6, message.hop_limit, message.src.packed, message.dst.packed
    )
    return build_ethernet(message.eth_dst, message.eth_src, ETH_P_IPV6, ip_header + icmp)


def build_solicitation(our_mac: bytes, src: IPv6Address, target: IPv6Address) -> bytes:
    """A multicast NS for ``target`` (address resolution), as a client would send it."""
    group = solicited_node_address(target)
    return build_ndp(NeighborSolicitation(multicast_mac(group), our_mac, src, group, target, our_mac))


def build_unsolicited_advertisement(
    target: IPv6Address, our_mac: bytes, src: IPv6Address | None = None, at_mac: bytes | None = None
) -> bytes:
    """The takeover NA: to all-nodes, Override=1, Solicited=0, with our MAC (or ``at_mac``, another host's, for a
    give-back) as target LL address.

    The IPv6 source defaults to ``target``, as Linux sends its own unsolicited NAs.
    """
    return build_ndp(
        NeighborAdvertisement(
            eth_dst=multicast_mac(ALL_NODES),
            eth_src=our_mac,
            src=src if src is not None else target,
            dst=ALL_NODES,
            target=target,
            target_lladdr=our_mac if at_mac is None else at_mac,
            solicited=False,
            override=True,
        )
    )
