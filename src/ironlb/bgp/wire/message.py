"""Any message: the union of the message types and the decoder that dispatches on the header's type."""

from __future__ import annotations

from ironlb.bgp.errors import HeaderSubcode

from .common import HEADER_LEN, MessageType, header_error
from .header import check_header
from .keepalive import KeepaliveMessage
from .notification import NotificationMessage, decode_notification
from .open import OpenMessage, decode_open
from .refresh import RouteRefreshMessage, decode_route_refresh
from .update import UpdateMessage, decode_update

Message = OpenMessage | UpdateMessage | KeepaliveMessage | NotificationMessage | RouteRefreshMessage


def decode_message(data: bytes, *, four_octet_as: bool = True) -> Message:
    """Decode one complete message (header included).

    ``four_octet_as`` selects the AS_PATH width, which depends on the session's
    negotiated capabilities.
    """
    length, msg_type = check_header(data)
    if length != len(data):
        raise header_error(HeaderSubcode.BAD_MESSAGE_LENGTH, data[16:18], "length mismatch")
    body = data[HEADER_LEN:]
    if msg_type == MessageType.OPEN:
        return decode_open(body)
    if msg_type == MessageType.UPDATE:
        return decode_update(body, four_octet_as=four_octet_as)
    if msg_type == MessageType.NOTIFICATION:
        return decode_notification(body)
    if msg_type == MessageType.KEEPALIVE:
        return KeepaliveMessage()
    return decode_route_refresh(body)
