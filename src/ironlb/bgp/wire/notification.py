"""NOTIFICATION (RFC 4271 4.5) and the RFC 9003 shutdown communication."""

from __future__ import annotations

from dataclasses import dataclass

from .common import HEADER_LEN, MAX_MESSAGE_LEN, MessageType
from .header import frame


@dataclass(frozen=True)
class NotificationMessage:
    """NOTIFICATION."""

    code: int
    subcode: int
    data: bytes = b""


def encode_notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    """NOTIFICATION, data truncated so the message fits in 4096 bytes."""
    data = data[: MAX_MESSAGE_LEN - HEADER_LEN - 2]
    return frame(MessageType.NOTIFICATION, bytes((code, subcode)) + data)


def shutdown_communication(text: str) -> bytes:
    """RFC 9003 data for cease 6/2 and 6/4: length byte + UTF-8, cut to 255 bytes on a char boundary."""
    raw = text.encode("utf-8")[:255]
    raw = raw.decode("utf-8", "ignore").encode("utf-8")
    return bytes((len(raw),)) + raw


def decode_notification(body: bytes) -> NotificationMessage:
    """A NOTIFICATION body (its minimum length is checked with the header)."""
    return NotificationMessage(body[0], body[1], bytes(body[2:]))
