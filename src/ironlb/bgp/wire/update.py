"""UPDATE (RFC 4271 4.3, 6.3): path attributes, MP_REACH/MP_UNREACH (RFC 4760), AS4_PATH (RFC 6793),
communities (RFC 1997, 4360, 8092) and the End-of-RIB marker (RFC 4724)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Any

from ironlb.bgp.errors import BGPError, UpdateSubcode

from .common import AFI_IPV4, AS_TRANS, IPV4_UNICAST, IPV6_UNICAST, Address, Family, MessageType, Network, update_error
from .extcommunity import decode_extended_communities, encode_extended_communities
from .header import frame
from .nlri import decode_prefixes, encode_prefix


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
    extended_communities: tuple[int, ...] = ()
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
            or self.extended_communities
            or self.as4_path is not None
            or self.other
        )
        if self.mp_unreach is None:
            return None if has_attrs else IPV4_UNICAST
        if has_attrs or self.mp_unreach.withdrawn:
            return None
        return (self.mp_unreach.afi, self.mp_unreach.safi)


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
    if msg.extended_communities:
        value = encode_extended_communities(msg.extended_communities)
        flags = FLAG_OPTIONAL | FLAG_TRANSITIVE
        attrs.append((AttrType.EXTENDED_COMMUNITIES, encode_attribute(flags, AttrType.EXTENDED_COMMUNITIES, value)))
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
    malformed = update_error(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)
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
    net_error = update_error(UpdateSubcode.INVALID_NETWORK_FIELD)
    withdrawn = _v4_only(decode_prefixes(withdrawn_raw, AFI_IPV4, net_error))
    nlri = _v4_only(decode_prefixes(nlri_raw, AFI_IPV4, net_error))
    f = _decode_attributes(attrs_raw, four_octet_as)
    if nlri or "mp_reach" in f:
        missing = [
            code
            for code, present in (
                (AttrType.ORIGIN, "origin" in f),
                (AttrType.AS_PATH, "as_path" in f),
                (AttrType.NEXT_HOP, "next_hop" in f or not nlri),
            )
            if not present
        ]
        if missing:
            raise update_error(UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE, bytes((missing[0],)))
    return UpdateMessage(withdrawn=withdrawn, nlri=nlri, **f)


def _v4_only(nets: tuple[Network, ...]) -> tuple[IPv4Network, ...]:
    return tuple(n for n in nets if isinstance(n, IPv4Network))


def _parse_as_path(value: bytes, four_octet: bool) -> tuple[AsPathSegment, ...]:
    width = 4 if four_octet else 2
    segs: list[AsPathSegment] = []
    i = 0
    err = update_error(UpdateSubcode.MALFORMED_AS_PATH, b"", "malformed AS_PATH")
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


def _decode_attributes(data: bytes, four_octet_as: bool) -> dict[str, Any]:
    """The attributes as :class:`UpdateMessage` keyword arguments (the field names are the keys)."""
    fields: dict[str, Any] = {}
    other: list[RawAttribute] = []
    seen: set[int] = set()
    i = 0
    n = len(data)
    malformed = update_error(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)
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
            raise update_error(UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, data[i:n], "attribute overruns list")
        value = data[start:end]
        i = end
        if type_code in seen:
            raise update_error(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, b"", f"duplicate attribute {type_code}")
        seen.add(type_code)
        expected = _EXPECTED_FLAGS.get(type_code)
        if expected is None:
            if not flags & FLAG_OPTIONAL:
                raise update_error(
                    UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, whole, f"unknown well-known attr {type_code}"
                )
            other.append(RawAttribute(flags & ~FLAG_EXTENDED_LENGTH, type_code, value))
            continue
        partial_ok = expected == FLAG_OPTIONAL | FLAG_TRANSITIVE
        if (flags & 0xC0) != expected or (flags & FLAG_PARTIAL and not partial_ok):
            raise update_error(UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, whole, f"bad flags on attribute {type_code}")
        _decode_known(type_code, value, whole, four_octet_as, fields)
    fields["other"] = tuple(other)
    return fields


def _fixed_len(value: bytes, lengths: tuple[int, ...], whole: bytes) -> None:
    if len(value) not in lengths:
        raise update_error(UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, whole)


def _decode_known(type_code: int, value: bytes, whole: bytes, four_octet_as: bool, fields: dict[str, Any]) -> None:
    opt_err = update_error(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, whole)
    if type_code == AttrType.ORIGIN:
        _fixed_len(value, (1,), whole)
        if value[0] > ORIGIN_INCOMPLETE:
            raise update_error(UpdateSubcode.INVALID_ORIGIN, whole)
        fields["origin"] = value[0]
    elif type_code == AttrType.AS_PATH:
        fields["as_path"] = _parse_as_path(value, four_octet_as)
    elif type_code == AttrType.NEXT_HOP:
        _fixed_len(value, (4,), whole)
        hop = IPv4Address(value)
        if hop.is_unspecified or hop.is_multicast or hop == IPv4Address("255.255.255.255"):
            raise update_error(UpdateSubcode.INVALID_NEXT_HOP, whole)
        fields["next_hop"] = hop
    elif type_code == AttrType.MULTI_EXIT_DISC:
        _fixed_len(value, (4,), whole)
        fields["med"] = int.from_bytes(value, "big")
    elif type_code == AttrType.LOCAL_PREF:
        _fixed_len(value, (4,), whole)
        fields["local_pref"] = int.from_bytes(value, "big")
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
            raise update_error(UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, whole)
    elif type_code == AttrType.COMMUNITIES:
        if len(value) % 4:
            raise opt_err
        fields["communities"] = tuple(int.from_bytes(value[k : k + 4], "big") for k in range(0, len(value), 4))
    elif type_code == AttrType.EXTENDED_COMMUNITIES:
        if len(value) % 8:
            raise opt_err
        fields["extended_communities"] = decode_extended_communities(value)
    elif type_code == AttrType.LARGE_COMMUNITIES:
        if len(value) % 12 or not value:
            raise opt_err
        fields["large_communities"] = tuple(
            (
                int.from_bytes(value[k : k + 4], "big"),
                int.from_bytes(value[k + 4 : k + 8], "big"),
                int.from_bytes(value[k + 8 : k + 12], "big"),
            )
            for k in range(0, len(value), 12)
        )
    elif type_code == AttrType.AS4_PATH:
        try:
            fields["as4_path"] = _parse_as_path(value, True)
        except BGPError:
            raise opt_err from None
    elif type_code == AttrType.MP_REACH_NLRI:
        fields["mp_reach"] = _decode_mp_reach(value, opt_err)
    elif type_code == AttrType.MP_UNREACH_NLRI:
        if len(value) < 3:
            raise opt_err
        afi, safi = int.from_bytes(value[:2], "big"), value[2]
        withdrawn: tuple[Network, ...] = ()
        if (afi, safi) in (IPV4_UNICAST, IPV6_UNICAST):
            withdrawn = decode_prefixes(value[3:], afi, opt_err)
        fields["mp_unreach"] = MPUnreach(afi, safi, withdrawn)


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
