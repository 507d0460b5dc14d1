"""ROUTE-REFRESH (RFC 2918, subtypes from RFC 7313)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ironlb.bgp.errors import BGPError, ErrorCode

from .common import HEADER_LEN, MessageType
from .header import frame


@dataclass(frozen=True)
class RouteRefreshMessage:
    """ROUTE-REFRESH (RFC 2918); subtype 1/2 are BoRR/EoRR from RFC 7313."""

    afi: int
    safi: int
    subtype: int = 0


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
