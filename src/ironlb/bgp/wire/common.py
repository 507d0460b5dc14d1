"""What every BGP message module shares: address and family types, header constants, message types and the
NOTIFICATION-carrying errors a decoder raises."""

from __future__ import annotations

from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from ironlb.bgp.errors import BGPError, ErrorCode, HeaderSubcode, OpenSubcode, UpdateSubcode

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


class MessageType(IntEnum):
    """BGP message types."""

    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


def header_error(sub: HeaderSubcode, data: bytes = b"", message: str = "") -> BGPError:
    return BGPError(ErrorCode.MESSAGE_HEADER, sub, data, message)


def open_error(sub: OpenSubcode, data: bytes = b"", message: str = "") -> BGPError:
    return BGPError(ErrorCode.OPEN_MESSAGE, sub, data, message)


def update_error(sub: UpdateSubcode, data: bytes = b"", message: str = "") -> BGPError:
    return BGPError(ErrorCode.UPDATE_MESSAGE, sub, data, message)
