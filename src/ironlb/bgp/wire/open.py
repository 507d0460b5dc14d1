"""OPEN and its capabilities (RFC 4271 4.2, RFC 5492, 4760, 6793, 4724, 2918, 7313, 8950, 9072)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv4Address

from ironlb.bgp.errors import HeaderSubcode, OpenSubcode

from .common import AS_TRANS, BGP_VERSION, HEADER_LEN, Family, MessageType, header_error, open_error
from .header import frame

_OPT_PARAM_CAPABILITIES = 2
_OPT_PARAM_EXTENDED = 255


class CapabilityCode(IntEnum):
    """Capability codes we know by name (IANA registry)."""

    MULTIPROTOCOL = 1
    ROUTE_REFRESH = 2
    EXTENDED_NEXT_HOP = 5
    EXTENDED_MESSAGE = 6
    GRACEFUL_RESTART = 64
    FOUR_OCTET_AS = 65
    ADD_PATH = 69
    ENHANCED_ROUTE_REFRESH = 70
    ROUTE_REFRESH_CISCO = 128


@dataclass(frozen=True)
class GracefulRestart:
    """Graceful restart capability (RFC 4724, N bit from RFC 8538)."""

    restart_time: int = 120
    restart_state: bool = False
    notification: bool = False
    families: tuple[tuple[int, int, bool], ...] = ()
    """(AFI, SAFI, forwarding state preserved) per family."""


ExtendedNextHop = tuple[int, int, int]
"""(NLRI AFI, NLRI SAFI, next hop AFI) of the extended next hop capability (RFC 8950 section 3)."""

IPV4_OVER_IPV6: ExtendedNextHop = (1, 1, 2)
"""IPv4 unicast prefixes with an IPv6 next hop, what unnumbered peering needs."""


@dataclass(frozen=True)
class Capabilities:
    """The capabilities of one OPEN, decoded into what the FSM needs."""

    multiprotocol: frozenset[Family] = frozenset()
    route_refresh: bool = False
    enhanced_route_refresh: bool = False
    four_octet_asn: int | None = None
    graceful_restart: GracefulRestart | None = None
    other: tuple[tuple[int, bytes], ...] = ()
    """Capabilities we do not interpret, kept as (code, value)."""
    extended_next_hop: frozenset[ExtendedNextHop] = frozenset()
    """RFC 8950: the (NLRI AFI, NLRI SAFI, next hop AFI) triples the speaker accepts, e.g. IPv4 over IPv6."""


@dataclass(frozen=True)
class OpenMessage:
    """OPEN. ``my_as`` is the 2-byte wire field; :attr:`asn` is the real ASN."""

    my_as: int
    hold_time: int
    bgp_id: IPv4Address
    capabilities: Capabilities = field(default_factory=Capabilities)
    version: int = BGP_VERSION

    @classmethod
    def for_asn(cls, asn: int, hold_time: int, bgp_id: IPv4Address, capabilities: Capabilities) -> OpenMessage:
        """Build an OPEN for a possibly 4-byte ASN, using AS_TRANS in the 2-byte field."""
        return cls(asn if asn <= 0xFFFF else AS_TRANS, hold_time, bgp_id, capabilities)

    @property
    def asn(self) -> int:
        """The speaker's ASN: the 4-byte capability overrides the 2-byte field (RFC 6793)."""
        four = self.capabilities.four_octet_asn
        return four if four is not None else self.my_as


def encode_capabilities(caps: Capabilities) -> list[bytes]:
    """Each capability as its TLV, in a stable order."""
    out: list[bytes] = []
    for afi, safi in sorted(caps.multiprotocol):
        out.append(struct.pack("!BBHBB", CapabilityCode.MULTIPROTOCOL, 4, afi, 0, safi))
    if caps.route_refresh:
        out.append(bytes((CapabilityCode.ROUTE_REFRESH, 0)))
    if caps.extended_next_hop:
        value = b"".join(struct.pack("!HHH", *triple) for triple in sorted(caps.extended_next_hop))
        out.append(bytes((CapabilityCode.EXTENDED_NEXT_HOP, len(value))) + value)
    if caps.enhanced_route_refresh:
        out.append(bytes((CapabilityCode.ENHANCED_ROUTE_REFRESH, 0)))
    gr = caps.graceful_restart
    if gr is not None:
        flags_time = (gr.restart_time & 0x0FFF) | (0x8000 if gr.restart_state else 0)
        flags_time |= 0x4000 if gr.notification else 0
        value = struct.pack("!H", flags_time) + b"".join(
            struct.pack("!HBB", afi, safi, 0x80 if fwd else 0) for afi, safi, fwd in gr.families
        )
        out.append(bytes((CapabilityCode.GRACEFUL_RESTART, len(value))) + value)
    if caps.four_octet_asn is not None:
        out.append(struct.pack("!BBI", CapabilityCode.FOUR_OCTET_AS, 4, caps.four_octet_asn))
    for code, value in caps.other:
        out.append(bytes((code, len(value))) + value)
    return out


def encode_open(msg: OpenMessage) -> bytes:
    """OPEN with all capabilities in as few optional parameters as fit in 255 bytes."""
    params = bytearray()
    current = bytearray()
    for tlv in encode_capabilities(msg.capabilities):
        if len(current) + len(tlv) > 255:
            params += bytes((_OPT_PARAM_CAPABILITIES, len(current))) + current
            current = bytearray()
        current += tlv
    if current:
        params += bytes((_OPT_PARAM_CAPABILITIES, len(current))) + current
    if len(params) > 255:
        raise ValueError("optional parameters longer than 255 bytes are not supported")
    body = struct.pack("!BHH4sB", msg.version, msg.my_as, msg.hold_time, msg.bgp_id.packed, len(params))
    return frame(MessageType.OPEN, body + bytes(params))


def decode_open(body: bytes) -> OpenMessage:
    """Decode an OPEN body; checks only what is context-free (ASN/hold checks are in the FSM)."""
    if len(body) < 10:
        raise header_error(HeaderSubcode.BAD_MESSAGE_LENGTH, struct.pack("!H", len(body) + HEADER_LEN))
    version, my_as, hold_time, bgp_id, opt_len = struct.unpack("!BHH4sB", body[:10])
    if version != BGP_VERSION:
        raise open_error(
            OpenSubcode.UNSUPPORTED_VERSION, struct.pack("!H", BGP_VERSION), f"unsupported version {version}"
        )
    params = body[10:]
    extended = False
    if opt_len == 255 and params[:1] == bytes((_OPT_PARAM_EXTENDED,)):
        # RFC 9072 extended optional parameters length.
        if len(params) < 3:
            raise open_error(OpenSubcode.UNSPECIFIC, b"", "truncated extended optional parameters")
        opt_len = int.from_bytes(params[1:3], "big")
        params = params[3:]
        extended = True
    if opt_len != len(params):
        raise open_error(OpenSubcode.UNSPECIFIC, b"", "optional parameters length mismatch")
    tlvs: list[tuple[int, bytes]] = []
    i = 0
    hdr = 3 if extended else 2
    while i < len(params):
        if i + hdr > len(params):
            raise open_error(OpenSubcode.UNSPECIFIC, b"", "truncated optional parameter")
        ptype = params[i]
        plen = int.from_bytes(params[i + 1 : i + hdr], "big")
        value = params[i + hdr : i + hdr + plen]
        if len(value) != plen:
            raise open_error(OpenSubcode.UNSPECIFIC, b"", "truncated optional parameter")
        i += hdr + plen
        if ptype != _OPT_PARAM_CAPABILITIES:
            raise open_error(
                OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER, b"", f"unsupported optional parameter {ptype}"
            )
        j = 0
        while j < plen:
            if j + 2 > plen:
                raise open_error(OpenSubcode.UNSPECIFIC, b"", "truncated capability")
            code, clen = value[j], value[j + 1]
            cval = value[j + 2 : j + 2 + clen]
            if len(cval) != clen:
                raise open_error(OpenSubcode.UNSPECIFIC, b"", "truncated capability")
            tlvs.append((code, bytes(cval)))
            j += 2 + clen
    return OpenMessage(my_as, hold_time, IPv4Address(bgp_id), _decode_capabilities(tlvs), version)


def _decode_capabilities(tlvs: Iterable[tuple[int, bytes]]) -> Capabilities:
    mp: set[Family] = set()
    route_refresh = False
    enhanced = False
    four: int | None = None
    gr: GracefulRestart | None = None
    enhe: set[ExtendedNextHop] = set()
    other: list[tuple[int, bytes]] = []
    for code, value in tlvs:
        bad = open_error(OpenSubcode.UNSPECIFIC, b"", f"malformed capability {code}")
        if code == CapabilityCode.MULTIPROTOCOL:
            if len(value) != 4:
                raise bad
            afi, _reserved, safi = struct.unpack("!HBB", value)
            mp.add((afi, safi))
        elif code in (CapabilityCode.ROUTE_REFRESH, CapabilityCode.ROUTE_REFRESH_CISCO):
            if value:
                raise bad
            route_refresh = True
        elif code == CapabilityCode.ENHANCED_ROUTE_REFRESH:
            if value:
                raise bad
            enhanced = True
        elif code == CapabilityCode.FOUR_OCTET_AS:
            if len(value) != 4:
                raise bad
            four = int.from_bytes(value, "big")
        elif code == CapabilityCode.GRACEFUL_RESTART:
            if len(value) < 2 or (len(value) - 2) % 4:
                raise bad
            flags_time = int.from_bytes(value[:2], "big")
            fams = tuple(
                (int.from_bytes(value[k : k + 2], "big"), value[k + 2], bool(value[k + 3] & 0x80))
                for k in range(2, len(value), 4)
            )
            gr = GracefulRestart(
                restart_time=flags_time & 0x0FFF,
                restart_state=bool(flags_time & 0x8000),
                notification=bool(flags_time & 0x4000),
                families=fams,
            )
        elif code == CapabilityCode.EXTENDED_NEXT_HOP:
            if len(value) % 6:
                raise bad
            enhe.update(struct.unpack("!HHH", value[k : k + 6]) for k in range(0, len(value), 6))
        else:
            other.append((code, value))
    return Capabilities(frozenset(mp), route_refresh, enhanced, four, gr, tuple(other), frozenset(enhe))
