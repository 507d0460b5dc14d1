"""Extended communities (RFC 4360) and the Link Bandwidth one (draft-ietf-idr-link-bandwidth, RFC 10005).

An extended community is 8 bytes, kept here as one unsigned 64-bit integer: type (1 byte), subtype (1 byte),
value (6 bytes). Link Bandwidth is the two-octet-AS-specific type, subtype 0x04: a 2-byte AS number then the
bandwidth in bytes per second as an IEEE 754 single-precision float. ironlb sends the transitive type (0x00):
FRR 8.4 only weighs paths by that one (its check of the non-transitive 0x40 came in 2026), and RFC 10005
receivers accept both.
"""

from __future__ import annotations

import math
import struct

from .common import AS_TRANS

EXTCOMM_TRANSITIVE_TWO_OCTET_AS = 0x00
EXTCOMM_NON_TRANSITIVE_TWO_OCTET_AS = 0x40
SUBTYPE_LINK_BANDWIDTH = 0x04

_U64 = (1 << 64) - 1
# The largest finite float32: a bandwidth above it cannot be carried.
MAX_LINK_BANDWIDTH = struct.unpack("!f", b"\x7f\x7f\xff\xff")[0]


def link_bandwidth(asn: int, bytes_per_second: float, *, transitive: bool = True) -> int:
    """The Link Bandwidth extended community of ``asn`` (AS_TRANS above 65535, as RFC 10005 says) as an int."""
    if not 0 <= asn <= 0xFFFFFFFF:
        raise ValueError(f"AS number {asn} out of range")
    if not (math.isfinite(bytes_per_second) and 0 <= bytes_per_second <= MAX_LINK_BANDWIDTH):
        raise ValueError(f"link bandwidth {bytes_per_second} is not a non-negative float32")
    kind = EXTCOMM_TRANSITIVE_TWO_OCTET_AS if transitive else EXTCOMM_NON_TRANSITIVE_TWO_OCTET_AS
    two_octet = asn if asn <= 0xFFFF else AS_TRANS
    raw = struct.pack("!BBHf", kind, SUBTYPE_LINK_BANDWIDTH, two_octet, bytes_per_second)
    return int.from_bytes(raw, "big")


def decode_link_bandwidth(value: int) -> tuple[int, float] | None:
    """(AS, bytes per second) if ``value`` is a Link Bandwidth community of either transitivity, else None."""
    if not 0 <= value <= _U64:
        return None
    raw = value.to_bytes(8, "big")
    if raw[0] not in (EXTCOMM_TRANSITIVE_TWO_OCTET_AS, EXTCOMM_NON_TRANSITIVE_TWO_OCTET_AS):
        return None
    if raw[1] != SUBTYPE_LINK_BANDWIDTH:
        return None
    asn, bandwidth = struct.unpack("!Hf", raw[2:])
    return asn, float(bandwidth)


def encode_extended_communities(values: tuple[int, ...]) -> bytes:
    """The EXTENDED_COMMUNITIES attribute value: 8 bytes per community."""
    out = bytearray()
    for v in values:
        if not 0 <= v <= _U64:
            raise ValueError(f"extended community {v} out of range")
        out += v.to_bytes(8, "big")
    return bytes(out)


def decode_extended_communities(value: bytes) -> tuple[int, ...]:
    """The communities of an EXTENDED_COMMUNITIES value whose length is a multiple of 8 (checked by the caller)."""
    return tuple(int.from_bytes(value[k : k + 8], "big") for k in range(0, len(value), 8))


__all__ = [
    "EXTCOMM_NON_TRANSITIVE_TWO_OCTET_AS",
    "EXTCOMM_TRANSITIVE_TWO_OCTET_AS",
    "MAX_LINK_BANDWIDTH",
    "SUBTYPE_LINK_BANDWIDTH",
    "decode_extended_communities",
    "decode_link_bandwidth",
    "encode_extended_communities",
    "link_bandwidth",
]
