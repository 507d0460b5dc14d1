"""BGP-4 message codec (RFC 4271, 4760, 5492, 6793, 4724, 2918, 7313, 1997, 8092).

Pure functions on bytes, no I/O and no state: the FSM owns the state, this
module only turns bytes into frozen dataclasses and back.  Every decoder
validates strictly and raises :class:`~ironlb.bgp.errors.BGPError` with the
NOTIFICATION code/subcode/data that RFC 4271 section 6 prescribes, and never
any other exception: the fuzz tests hold it to that.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from .errors import (
    BGPError,
    ErrorCode,
    HeaderSubcode,
    OpenSubcode,
    UpdateSubcode,
)

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address
Family = tuple[int, int]
"""(AFI, SAFI)."""

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096
BGP_VERSION = 4
AS_TRANS = 23456

AFI_IPV4 = 1
AFI_IPV6 = 2
SAFI_UNICAST = 1
IPV4_UNICAST: Family = (AFI_IPV4, SAFI_UNICAST)
IPV6_UNICAST: Family = (AFI_IPV6, SAFI_UNICAST)

_OPT_PARAM_CAPABILITIES = 2
_OPT_PARAM_EXTENDED = 255


class MessageType(IntEnum):
    """BGP message types."""

    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


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


class AttrType(IntEnum):
    """Path attribute type codes."""

    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MULTI_EXIT_DISC = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    ORIGINATOR_ID = 9
    CLUSTER_LIST = 10
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    EXTENDED_COMMUNITIES = 16
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITIES = 32


FLAG_OPTIONAL = 0x80
FLAG_TRANSITIVE = 0x40
FLAG_PARTIAL = 0x20
FLAG_EXTENDED_LENGTH = 0x10

ORIGIN_IGP = 0
ORIGIN_EGP = 1
ORIGIN_INCOMPLETE = 2

AS_SET = 1
AS_SEQUENCE = 2
AS_CONFED_SEQUENCE = 3
AS_CONFED_SET = 4

# Expected (optional, transitive) flag bits of the attributes we recognise.
_EXPECTED_FLAGS: dict[int, int] = {
    AttrType.ORIGIN: FLAG_TRANSITIVE,
    AttrType.AS_PATH: FLAG_TRANSITIVE,
    AttrType.NEXT_HOP: FLAG_TRANSITIVE,
    AttrType.MULTI_EXIT_DISC: FLAG_OPTIONAL,
    AttrType.LOCAL_PREF: FLAG_TRANSITIVE,
    AttrType.ATOMIC_AGGREGATE: FLAG_TRANSITIVE,
    AttrType.AGGREGATOR: FLAG_OPTIONAL | FLAG_TRANSITIVE,
    AttrType.COMMUNITIES: FLAG_OPTIONAL | FLAG_TRANSITIVE,
    AttrType.ORIGINATOR_ID: FLAG_OPTIONAL,
    AttrType.CLUSTER_LIST: FLAG_OPTIONAL,
    AttrType.MP_REACH_NLRI: FLAG_OPTIONAL,
    AttrType.MP_UNREACH_NLRI: FLAG_OPTIONAL,
    AttrType.EXTENDED_COMMUNITIES: FLAG_OPTIONAL | FLAG_TRANSITIVE,
    AttrType.AS4_PATH: FLAG_OPTIONAL | FLAG_TRANSITIVE,
    AttrType.AS4_AGGREGATOR: FLAG_OPTIONAL | FLAG_TRANSITIVE,
    AttrType.LARGE_COMMUNITIES: FLAG_OPTIONAL | FLAG_TRANSITIVE,
}


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class GracefulRestart:
    """Graceful restart capability (RFC 4724, N bit from RFC 8538)."""

    restart_time: int = 120
    restart_state: bool = False
    notification: bool = False
    families: tuple[tuple[int, int, bool], ...] = ()
    """(AFI, SAFI, forwarding state preserved) per family."""


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


@dataclass(frozen=True)
class KeepaliveMessage:
    """KEEPALIVE (header only)."""


@dataclass(frozen=True)
class NotificationMessage:
    """NOTIFICATION."""

    code: int
    subcode: int
    data: bytes = b""


@dataclass(frozen=True)
class RouteRefreshMessage:
    """ROUTE-REFRESH (RFC 2918); subtype 1/2 are BoRR/EoRR from RFC 7313."""

    afi: int
    safi: int
    subtype: int = 0


@dataclass(frozen=True)
class MPReach:
    """MP_REACH_NLRI. For AFI/SAFI we do not parse, ``nlri`` stays empty."""

    afi: int
    safi: int
    next_hops: tuple[Address, ...]
    nlri: tuple[Network, ...] = ()


@dataclass(frozen=True)
class MPUnreach:
    """MP_UNREACH_NLRI. Empty ``withdrawn`` is the End-of-RIB marker of that family."""

    afi: int
    safi: int
    withdrawn: tuple[Network, ...] = ()


@dataclass(frozen=True)
class RawAttribute:
    """An attribute we carry but do not interpret."""

    flags: int
    type_code: int
    value: bytes


AsPathSegment = tuple[int, tuple[int, ...]]
"""(segment type, ASNs)."""


@dataclass(frozen=True)
class UpdateMessage:
    """UPDATE with the attributes we know decoded; unknown optional ones in ``other``."""

    withdrawn: tuple[IPv4Network, ...] = ()
    nlri: tuple[IPv4Network, ...] = ()
    origin: int | None = None
    as_path: tuple[AsPathSegment, ...] | None = None
    next_hop: IPv4Address | None = None
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    mp_reach: MPReach | None = None
    mp_unreach: MPUnreach | None = None
    as4_path: tuple[AsPathSegment, ...] | None = None
    other: tuple[RawAttribute, ...] = ()

    def end_of_rib(self) -> Family | None:
        """The family whose End-of-RIB marker this is (RFC 4724 section 2), else None."""
        if self.withdrawn or self.nlri or self.mp_reach is not None:
            return None
        has_attrs = (
            self.origin is not None
            or self.as_path is not None
            or self.next_hop is not None
            or self.med is not None
            or self.local_pref is not None
            or self.communities
            or self.large_communities
            or self.as4_path is not None
            or self.other
        )
        if self.mp_unreach is None:
            return None if has_attrs else IPV4_UNICAST
        if has_attrs or self.mp_unreach.withdrawn:
            return None
        return (self.mp_unreach.afi, self.mp_unreach.safi)


Message = OpenMessage | UpdateMessage | KeepaliveMessage | NotificationMessage | RouteRefreshMessage


# --------------------------------------------------------------------------- helpers


def _header_error(sub: HeaderSubcode, data: bytes = b"", message: str = "") -> BGPError:
    return BGPError(ErrorCode.MESSAGE_HEADER, sub, data, message)


def _open_error(sub: OpenSubcode, data: bytes = b"", message: str = "") -> BGPError:
    return BGPError(ErrorCode.OPEN_MESSAGE, sub, data, message)


def _update_error(sub: UpdateSubcode, data: bytes = b"", message: str = "") -> BGPError:
    return BGPError(ErrorCode.UPDATE_MESSAGE, sub, data, message)


def frame(msg_type: int, body: bytes) -> bytes:
    """Prefix ``body`` with the 19-byte header."""
    length = HEADER_LEN + len(body)
    if length > MAX_MESSAGE_LEN:
        raise ValueError(f"BGP message of {length} bytes exceeds {MAX_MESSAGE_LEN}")
    return MARKER + struct.pack("!HB", length, msg_type) + body


def family_of(net: Network) -> Family:
    """The (AFI, SAFI) a unicast prefix belongs to."""
    return IPV4_UNICAST if net.version == 4 else IPV6_UNICAST


def encode_prefix(net: Network) -> bytes:
    """NLRI encoding: length byte plus the minimal number of address bytes."""
    plen = net.prefixlen
    return bytes((plen,)) + net.network_address.packed[: (plen + 7) // 8]


def prefix_size(net: Network) -> int:
    """Encoded size of :func:`encode_prefix` without building it (for packing)."""
    return 1 + (net.prefixlen + 7) // 8


def decode_prefixes(data: bytes, afi: int, error: BGPError) -> tuple[Network, ...]:
    """Decode a run of NLRI prefixes; raise ``error`` on any inconsistency.

    Host bits beyond the prefix length are ignored (RFC 4271 says they are irrelevant).
    """
    width = 4 if afi == AFI_IPV4 else 16
    out: list[Network] = []
    i = 0
    n = len(data)
    while i < n:
        plen = data[i]
        i += 1
        if plen > width * 8:
            raise error
        nbytes = (plen + 7) // 8
        if i + nbytes > n:
            raise error
        raw = data[i : i + nbytes] + bytes(width - nbytes)
        i += nbytes
        if afi == AFI_IPV4:
            out.append(IPv4Network((int.from_bytes(raw, "big"), plen), strict=False))
        else:
            out.append(IPv6Network((int.from_bytes(raw, "big"), plen), strict=False))
    return tuple(out)


# --------------------------------------------------------------------------- framing


def split_messages(buffer: bytearray) -> list[bytes]:
    """Remove and return every complete message at the front of ``buffer``.

    Validates the header (marker, length, type) as soon as 19 bytes are there, so a
    desynchronised stream fails fast instead of waiting for a bogus length.
    """
    out: list[bytes] = []
    while len(buffer) >= HEADER_LEN:
        check_header(bytes(buffer[:HEADER_LEN]))
        length = int.from_bytes(buffer[16:18], "big")
        if len(buffer) < length:
            break
        out.append(bytes(buffer[:length]))
        del buffer[:length]
    return out


_MIN_LEN = {
    MessageType.OPEN: 29,
    MessageType.UPDATE: 23,
    MessageType.NOTIFICATION: 21,
    MessageType.KEEPALIVE: 19,
    MessageType.ROUTE_REFRESH: 23,
}


def check_header(header: bytes) -> tuple[int, int]:
    """Validate a 19-byte header; return (length, type)."""
    if len(header) < HEADER_LEN:
        raise _header_error(HeaderSubcode.BAD_MESSAGE_LENGTH, b"", "truncated header")
    if header[:16] != MARKER:
        raise _header_error(HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, b"", "bad marker")
    length = int.from_bytes(header[16:18], "big")
    msg_type = header[18]
    if msg_type not in _MIN_LEN:
        raise _header_error(HeaderSubcode.BAD_MESSAGE_TYPE, bytes((msg_type,)), f"bad type {msg_type}")
    bad = length < _MIN_LEN[MessageType(msg_type)] or length > MAX_MESSAGE_LEN
    if msg_type == MessageType.KEEPALIVE and length != HEADER_LEN:
        bad = True
    if bad:
        raise _header_error(HeaderSubcode.BAD_MESSAGE_LENGTH, header[16:18], f"bad length {length} for type {msg_type}")
    return length, msg_type


def decode_message(data: bytes, *, four_octet_as: bool = True) -> Message:
    """Decode one complete message (header included).

    ``four_octet_as`` selects the AS_PATH width, which depends on the session's
    negotiated capabilities.
    """
    length, msg_type = check_header(data)
    if length != len(data):
        raise _header_error(HeaderSubcode.BAD_MESSAGE_LENGTH, data[16:18], "length mismatch")
    body = data[HEADER_LEN:]
    if msg_type == MessageType.OPEN:
        return decode_open(body)
    if msg_type == MessageType.UPDATE:
        return decode_update(body, four_octet_as=four_octet_as)
    if msg_type == MessageType.NOTIFICATION:
        return NotificationMessage(body[0], body[1], bytes(body[2:]))
    if msg_type == MessageType.KEEPALIVE:
        return KeepaliveMessage()
    return decode_route_refresh(body)


# --------------------------------------------------------------------------- OPEN


def encode_capabilities(caps: Capabilities) -> list[bytes]:
    """Each capability as its TLV, in a stable order."""
    out: list[bytes] = []
    for afi, safi in sorted(caps.multiprotocol):
        out.append(struct.pack("!BBHBB", CapabilityCode.MULTIPROTOCOL, 4, afi, 0, safi))
    if caps.route_refresh:
        out.append(bytes((CapabilityCode.ROUTE_REFRESH, 0)))
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
        raise _header_error(HeaderSubcode.BAD_MESSAGE_LENGTH, struct.pack("!H", len(body) + HEADER_LEN))
    version, my_as, hold_time, bgp_id, opt_len = struct.unpack("!BHH4sB", body[:10])
    if version != BGP_VERSION:
        raise _open_error(
            OpenSubcode.UNSUPPORTED_VERSION, struct.pack("!H", BGP_VERSION), f"unsupported version {version}"
        )
    params = body[10:]
    extended = False
    if opt_len == 255 and params[:1] == bytes((_OPT_PARAM_EXTENDED,)):
        # RFC 9072 extended optional parameters length.
        if len(params) < 3:
            raise _open_error(OpenSubcode.UNSPECIFIC, b"", "truncated extended optional parameters")
        opt_len = int.from_bytes(params[1:3], "big")
        params = params[3:]
        extended = True
    if opt_len != len(params):
        raise _open_error(OpenSubcode.UNSPECIFIC, b"", "optional parameters length mismatch")
    tlvs: list[tuple[int, bytes]] = []
    i = 0
    hdr = 3 if extended else 2
    while i < len(params):
        if i + hdr > len(params):
            raise _open_error(OpenSubcode.UNSPECIFIC, b"", "truncated optional parameter")
        ptype = params[i]
        plen = int.from_bytes(params[i + 1 : i + hdr], "big")
        value = params[i + hdr : i + hdr + plen]
        if len(value) != plen:
            raise _open_error(OpenSubcode.UNSPECIFIC, b"", "truncated optional parameter")
        i += hdr + plen
        if ptype != _OPT_PARAM_CAPABILITIES:
            raise _open_error(
                OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER, b"", f"unsupported optional parameter {ptype}"
            )
        j = 0
        while j < plen:
            if j + 2 > plen:
                raise _open_error(OpenSubcode.UNSPECIFIC, b"", "truncated capability")
            code, clen = value[j], value[j + 1]
            cval = value[j + 2 : j + 2 + clen]
            if len(cval) != clen:
                raise _open_error(OpenSubcode.UNSPECIFIC, b"", "truncated capability")
            tlvs.append((code, bytes(cval)))
            j += 2 + clen
    return OpenMessage(my_as, hold_time, IPv4Address(bgp_id), _decode_capabilities(tlvs), version)


def _decode_capabilities(tlvs: Iterable[tuple[int, bytes]]) -> Capabilities:
    mp: set[Family] = set()
    route_refresh = False
    enhanced = False
    four: int | None = None
    gr: GracefulRestart | None = None
    other: list[tuple[int, bytes]] = []
    for code, value in tlvs:
        bad = _open_error(OpenSubcode.UNSPECIFIC, b"", f"malformed capability {code}")
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
        else:
            other.append((code, value))
    return Capabilities(frozenset(mp), route_refresh, enhanced, four, gr, tuple(other))


# --------------------------------------------------------------------------- small messages


def encode_keepalive() -> bytes:
    """KEEPALIVE: a bare header."""
    return frame(MessageType.KEEPALIVE, b"")


def encode_notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    """NOTIFICATION, data truncated so the message fits in 4096 bytes."""
    data = data[: MAX_MESSAGE_LEN - HEADER_LEN - 2]
    return frame(MessageType.NOTIFICATION, bytes((code, subcode)) + data)


def shutdown_communication(text: str) -> bytes:
    """RFC 9003 data for cease 6/2 and 6/4: length byte + UTF-8, cut to 255 bytes on a char boundary."""
    raw = text.encode("utf-8")[:255]
    raw = raw.decode("utf-8", "ignore").encode("utf-8")
    return bytes((len(raw),)) + raw


def encode_route_refresh(afi: int, safi: int, subtype: int = 0) -> bytes:
    """ROUTE-REFRESH for one family."""
    return frame(MessageType.ROUTE_REFRESH, struct.pack("!HBB", afi, subtype, safi))


def decode_route_refresh(body: bytes) -> RouteRefreshMessage:
    """ROUTE-REFRESH body is exactly 4 bytes; anything else is 7/1 (RFC 7313)."""
    if len(body) != 4:
        raise BGPError(
            ErrorCode.ROUTE_REFRESH, 1, struct.pack("!H", len(body) + HEADER_LEN), "bad ROUTE-REFRESH length"
        )
    afi, subtype, safi = struct.unpack("!HBB", body)
    return RouteRefreshMessage(afi, safi, subtype)


# --------------------------------------------------------------------------- UPDATE


def encode_attribute(flags: int, type_code: int, value: bytes) -> bytes:
    """One path attribute, switching to the extended length form above 255 bytes."""
    if len(value) > 255:
        return struct.pack("!BBH", flags | FLAG_EXTENDED_LENGTH, type_code, len(value)) + value
    return struct.pack("!BBB", flags & ~FLAG_EXTENDED_LENGTH, type_code, len(value)) + value


def encode_as_path(segments: Iterable[AsPathSegment], four_octet: bool) -> bytes:
    """AS_PATH value; segments longer than 255 ASNs are split."""
    fmt = "!I" if four_octet else "!H"
    out = bytearray()
    for seg_type, asns in segments:
        for k in range(0, len(asns), 255):
            chunk = asns[k : k + 255]
            out += bytes((seg_type, len(chunk)))
            for asn in chunk:
                out += struct.pack(fmt, asn if four_octet or asn <= 0xFFFF else AS_TRANS)
    return bytes(out)


def _encode_next_hops(hops: tuple[Address, ...]) -> bytes:
    return b"".join(h.packed for h in hops)


def encode_path_attributes(msg: UpdateMessage, *, four_octet_as: bool) -> bytes:
    """All attributes of ``msg`` in ascending type order (RFC 4271 section 5 SHOULD)."""
    attrs: list[tuple[int, bytes]] = []
    if msg.origin is not None:
        attrs.append((AttrType.ORIGIN, encode_attribute(FLAG_TRANSITIVE, AttrType.ORIGIN, bytes((msg.origin,)))))
    if msg.as_path is not None:
        attrs.append(
            (
                AttrType.AS_PATH,
                encode_attribute(FLAG_TRANSITIVE, AttrType.AS_PATH, encode_as_path(msg.as_path, four_octet_as)),
            )
        )
        if not four_octet_as and msg.as4_path is None:
            big = any(asn > 0xFFFF for _t, asns in msg.as_path for asn in asns)
            if big:
                # RFC 6793: a NEW speaker talking to an OLD one sends the true path in AS4_PATH.
                value = encode_as_path(msg.as_path, True)
                flags = FLAG_OPTIONAL | FLAG_TRANSITIVE
                attrs.append((AttrType.AS4_PATH, encode_attribute(flags, AttrType.AS4_PATH, value)))
    if msg.next_hop is not None:
        attrs.append((AttrType.NEXT_HOP, encode_attribute(FLAG_TRANSITIVE, AttrType.NEXT_HOP, msg.next_hop.packed)))
    if msg.med is not None:
        value = struct.pack("!I", msg.med)
        attrs.append((AttrType.MULTI_EXIT_DISC, encode_attribute(FLAG_OPTIONAL, AttrType.MULTI_EXIT_DISC, value)))
    if msg.local_pref is not None:
        value = struct.pack("!I", msg.local_pref)
        attrs.append((AttrType.LOCAL_PREF, encode_attribute(FLAG_TRANSITIVE, AttrType.LOCAL_PREF, value)))
    if msg.communities:
        value = b"".join(struct.pack("!I", c) for c in msg.communities)
        flags = FLAG_OPTIONAL | FLAG_TRANSITIVE
        attrs.append((AttrType.COMMUNITIES, encode_attribute(flags, AttrType.COMMUNITIES, value)))
    if msg.mp_reach is not None:
        r = msg.mp_reach
        hops = _encode_next_hops(r.next_hops)
        value = (
            struct.pack("!HBB", r.afi, r.safi, len(hops)) + hops + b"\x00" + b"".join(encode_prefix(p) for p in r.nlri)
        )
        attrs.append((AttrType.MP_REACH_NLRI, encode_attribute(FLAG_OPTIONAL, AttrType.MP_REACH_NLRI, value)))
    if msg.mp_unreach is not None:
        u = msg.mp_unreach
        value = struct.pack("!HB", u.afi, u.safi) + b"".join(encode_prefix(p) for p in u.withdrawn)
        attrs.append((AttrType.MP_UNREACH_NLRI, encode_attribute(FLAG_OPTIONAL, AttrType.MP_UNREACH_NLRI, value)))
    if msg.as4_path is not None:
        value = encode_as_path(msg.as4_path, True)
        flags = FLAG_OPTIONAL | FLAG_TRANSITIVE
        attrs.append((AttrType.AS4_PATH, encode_attribute(flags, AttrType.AS4_PATH, value)))
    if msg.large_communities:
        value = b"".join(struct.pack("!III", *lc) for lc in msg.large_communities)
        flags = FLAG_OPTIONAL | FLAG_TRANSITIVE
        attrs.append((AttrType.LARGE_COMMUNITIES, encode_attribute(flags, AttrType.LARGE_COMMUNITIES, value)))
    for raw in msg.other:
        attrs.append((raw.type_code, encode_attribute(raw.flags, raw.type_code, raw.value)))
    attrs.sort(key=lambda item: item[0])
    return b"".join(a for _t, a in attrs)


def encode_update(msg: UpdateMessage, *, four_octet_as: bool = True) -> bytes:
    """Serialise an UPDATE; raises ValueError if it does not fit in 4096 bytes."""
    withdrawn = b"".join(encode_prefix(p) for p in msg.withdrawn)
    attrs = encode_path_attributes(msg, four_octet_as=four_octet_as)
    nlri = b"".join(encode_prefix(p) for p in msg.nlri)
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri
    return frame(MessageType.UPDATE, body)


def encode_end_of_rib(family: Family) -> bytes:
    """End-of-RIB marker: an empty UPDATE for IPv4, an empty MP_UNREACH otherwise (RFC 4724)."""
    if family == IPV4_UNICAST:
        return encode_update(UpdateMessage())
    return encode_update(UpdateMessage(mp_unreach=MPUnreach(family[0], family[1])))


def decode_update(body: bytes, *, four_octet_as: bool = True) -> UpdateMessage:
    """Decode and validate an UPDATE body (RFC 4271 section 6.3)."""
    malformed = _update_error(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)
    if len(body) < 4:
        raise malformed
    wlen = int.from_bytes(body[:2], "big")
    if 2 + wlen + 2 > len(body):
        raise malformed
    withdrawn_raw = body[2 : 2 + wlen]
    alen = int.from_bytes(body[2 + wlen : 4 + wlen], "big")
    attrs_start = 4 + wlen
    if attrs_start + alen > len(body):
        raise malformed
    attrs_raw = body[attrs_start : attrs_start + alen]
    nlri_raw = body[attrs_start + alen :]
    net_error = _update_error(UpdateSubcode.INVALID_NETWORK_FIELD)
    withdrawn = _v4_only(decode_prefixes(withdrawn_raw, AFI_IPV4, net_error))
    nlri = _v4_only(decode_prefixes(nlri_raw, AFI_IPV4, net_error))
    f = _decode_attributes(attrs_raw, four_octet_as)
    if nlri or f.mp_reach is not None:
        missing = [
            code
            for code, value in (
                (AttrType.ORIGIN, f.origin),
                (AttrType.AS_PATH, f.as_path),
                (AttrType.NEXT_HOP, f.next_hop if nlri else True),
            )
            if value is None
        ]
        if missing:
            raise _update_error(UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE, bytes((missing[0],)))
    return UpdateMessage(
        withdrawn=withdrawn,
        nlri=nlri,
        origin=f.origin,
        as_path=f.as_path,
        next_hop=f.next_hop,
        med=f.med,
        local_pref=f.local_pref,
        communities=f.communities,
        large_communities=f.large_communities,
        mp_reach=f.mp_reach,
        mp_unreach=f.mp_unreach,
        as4_path=f.as4_path,
        other=f.other,
    )


@dataclass
class _Fields:
    """Mutable accumulator while decoding attributes."""

    origin: int | None = None
    as_path: tuple[AsPathSegment, ...] | None = None
    next_hop: IPv4Address | None = None
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    mp_reach: MPReach | None = None
    mp_unreach: MPUnreach | None = None
    as4_path: tuple[AsPathSegment, ...] | None = None
    other: tuple[RawAttribute, ...] = ()


def _v4_only(nets: tuple[Network, ...]) -> tuple[IPv4Network, ...]:
    return tuple(n for n in nets if isinstance(n, IPv4Network))


def _parse_as_path(value: bytes, four_octet: bool) -> tuple[AsPathSegment, ...]:
    width = 4 if four_octet else 2
    segs: list[AsPathSegment] = []
    i = 0
    err = _update_error(UpdateSubcode.MALFORMED_AS_PATH, b"", "malformed AS_PATH")
    while i < len(value):
        if i + 2 > len(value):
            raise err
        seg_type, count = value[i], value[i + 1]
        if seg_type not in (AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET) or count == 0:
            raise err
        end = i + 2 + count * width
        if end > len(value):
            raise err
        asns = tuple(int.from_bytes(value[k : k + width], "big") for k in range(i + 2, end, width))
        segs.append((seg_type, asns))
        i = end
    return tuple(segs)


def _parse_next_hops(afi: int, raw: bytes) -> tuple[Address, ...] | None:
    if len(raw) == 4:
        return (IPv4Address(raw),)
    if len(raw) == 16:
        return (IPv6Address(raw),)
    if len(raw) == 32:
        return (IPv6Address(raw[:16]), IPv6Address(raw[16:]))
    return None


def _decode_attributes(data: bytes, four_octet_as: bool) -> _Fields:
    fields = _Fields()
    other: list[RawAttribute] = []
    seen: set[int] = set()
    i = 0
    n = len(data)
    malformed = _update_error(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)
    while i < n:
        if i + 3 > n:
            raise malformed
        flags, type_code = data[i], data[i + 1]
        if flags & FLAG_EXTENDED_LENGTH:
            if i + 4 > n:
                raise malformed
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            hdr = 4
        else:
            length = data[i + 2]
            hdr = 3
        start = i + hdr
        end = start + length
        whole = data[i:end]
        if end > n:
            raise _update_error(UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, data[i:n], "attribute overruns list")
        value = data[start:end]
        i = end
        if type_code in seen:
            raise _update_error(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, b"", f"duplicate attribute {type_code}")
        seen.add(type_code)
        expected = _EXPECTED_FLAGS.get(type_code)
        if expected is None:
            if not flags & FLAG_OPTIONAL:
                raise _update_error(
                    UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, whole, f"unknown well-known attr {type_code}"
                )
            other.append(RawAttribute(flags & ~FLAG_EXTENDED_LENGTH, type_code, value))
            continue
        partial_ok = expected == FLAG_OPTIONAL | FLAG_TRANSITIVE
        if (flags & 0xC0) != expected or (flags & FLAG_PARTIAL and not partial_ok):
            raise _update_error(UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, whole, f"bad flags on attribute {type_code}")
        _decode_known(type_code, value, whole, four_octet_as, fields)
    fields.other = tuple(other)
    return fields


def _fixed_len(value: bytes, lengths: tuple[int, ...], whole: bytes) -> None:
    if len(value) not in lengths:
        raise _update_error(UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, whole)


def _decode_known(type_code: int, value: bytes, whole: bytes, four_octet_as: bool, fields: _Fields) -> None:
    opt_err = _update_error(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, whole)
    if type_code == AttrType.ORIGIN:
        _fixed_len(value, (1,), whole)
        if value[0] > ORIGIN_INCOMPLETE:
            raise _update_error(UpdateSubcode.INVALID_ORIGIN, whole)
        fields.origin = value[0]
    elif type_code == AttrType.AS_PATH:
        fields.as_path = _parse_as_path(value, four_octet_as)
    elif type_code == AttrType.NEXT_HOP:
        _fixed_len(value, (4,), whole)
        hop = IPv4Address(value)
        if hop.is_unspecified or hop.is_multicast or hop == IPv4Address("255.255.255.255"):
            raise _update_error(UpdateSubcode.INVALID_NEXT_HOP, whole)
        fields.next_hop = hop
    elif type_code == AttrType.MULTI_EXIT_DISC:
        _fixed_len(value, (4,), whole)
        fields.med = int.from_bytes(value, "big")
    elif type_code == AttrType.LOCAL_PREF:
        _fixed_len(value, (4,), whole)
        fields.local_pref = int.from_bytes(value, "big")
    elif type_code == AttrType.ATOMIC_AGGREGATE:
        _fixed_len(value, (0,), whole)
    elif type_code == AttrType.AGGREGATOR:
        _fixed_len(value, (8,) if four_octet_as else (6,), whole)
    elif type_code == AttrType.AS4_AGGREGATOR:
        _fixed_len(value, (8,), whole)
    elif type_code == AttrType.ORIGINATOR_ID:
        _fixed_len(value, (4,), whole)
    elif type_code == AttrType.CLUSTER_LIST:
        if len(value) % 4:
            raise _update_error(UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, whole)
    elif type_code == AttrType.COMMUNITIES:
        if len(value) % 4:
            raise opt_err
        fields.communities = tuple(int.from_bytes(value[k : k + 4], "big") for k in range(0, len(value), 4))
    elif type_code == AttrType.EXTENDED_COMMUNITIES:
        if len(value) % 8:
            raise opt_err
    elif type_code == AttrType.LARGE_COMMUNITIES:
        if len(value) % 12 or not value:
            raise opt_err
        fields.large_communities = tuple(
            (
                int.from_bytes(value[k : k + 4], "big"),
                int.from_bytes(value[k + 4 : k + 8], "big"),
                int.from_bytes(value[k + 8 : k + 12], "big"),
            )
            for k in range(0, len(value), 12)
        )
    elif type_code == AttrType.AS4_PATH:
        try:
            fields.as4_path = _parse_as_path(value, True)
        except BGPError:
            raise opt_err from None
    elif type_code == AttrType.MP_REACH_NLRI:
        fields.mp_reach = _decode_mp_reach(value, opt_err)
    elif type_code == AttrType.MP_UNREACH_NLRI:
        if len(value) < 3:
            raise opt_err
        afi, safi = int.from_bytes(value[:2], "big"), value[2]
        withdrawn: tuple[Network, ...] = ()
        if (afi, safi) in (IPV4_UNICAST, IPV6_UNICAST):
            withdrawn = decode_prefixes(value[3:], afi, opt_err)
        fields.mp_unreach = MPUnreach(afi, safi, withdrawn)


def _decode_mp_reach(value: bytes, opt_err: BGPError) -> MPReach:
    if len(value) < 5:
        raise opt_err
    afi, safi, nhlen = int.from_bytes(value[:2], "big"), value[2], value[3]
    if 4 + nhlen + 1 > len(value):
        raise opt_err
    hop_raw = value[4 : 4 + nhlen]
    nlri_raw = value[4 + nhlen + 1 :]
    if (afi, safi) not in (IPV4_UNICAST, IPV6_UNICAST):
        return MPReach(afi, safi, ())
    hops = _parse_next_hops(afi, hop_raw)
    if hops is None:
        raise opt_err
    return MPReach(afi, safi, hops, decode_prefixes(nlri_raw, afi, opt_err))
