"""The 19-byte header: framing a body, validating a header, splitting a TCP stream into messages."""

from __future__ import annotations

import struct

from ironlb.bgp.errors import HeaderSubcode

from .common import HEADER_LEN, MARKER, MAX_MESSAGE_LEN, MessageType, header_error


def frame(msg_type: int, body: bytes) -> bytes:
    """Prefix ``body`` with the 19-byte header."""
    length = HEADER_LEN + len(body)
    if length > MAX_MESSAGE_LEN:
        raise ValueError(f"BGP message of {length} bytes exceeds {MAX_MESSAGE_LEN}")
    return MARKER + struct.pack("!HB", length, msg_type) + body


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
        raise header_error(HeaderSubcode.BAD_MESSAGE_LENGTH, b"", "truncated header")
    if header[:16] != MARKER:
        raise header_error(HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, b"", "bad marker")
    length = int.from_bytes(header[16:18], "big")
    msg_type = header[18]
    if msg_type not in _MIN_LEN:
        raise header_error(HeaderSubcode.BAD_MESSAGE_TYPE, bytes((msg_type,)), f"bad type {msg_type}")
    bad = length < _MIN_LEN[MessageType(msg_type)] or length > MAX_MESSAGE_LEN
    if msg_type == MessageType.KEEPALIVE and length != HEADER_LEN:
        bad = True
    if bad:
        raise header_error(HeaderSubcode.BAD_MESSAGE_LENGTH, header[16:18], f"bad length {length} for type {msg_type}")
    return length, msg_type
