"""Framing of the channel between the heavy side and the fast process: length-prefixed JSON objects.

A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON holding one object. The sizes are
bounded both ways (:data:`MAX_FRAME`): the decoder refuses a longer frame before buffering it, so a confused
peer costs at most one frame of memory. Sans-I/O: bytes in, messages out.
"""

from __future__ import annotations

import json
import struct
from typing import Any

__all__ = ["MAX_FRAME", "ChannelError", "Decoder", "encode"]

MAX_FRAME = 16 * 1024 * 1024
"""Largest frame, bytes: an announced set of 100,000 IPs fits several times over."""
_HEADER = struct.Struct(">I")

Message = dict[str, Any]


class ChannelError(ValueError):
    """The other side sent something that is not a frame of this protocol."""


def encode(message: Message) -> bytes:
    """One frame holding ``message``."""
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise ChannelError(f"message of {len(body)} bytes is over the {MAX_FRAME}-byte frame limit")
    return _HEADER.pack(len(body)) + body


class Decoder:
    """Feed bytes as they arrive; get the complete messages back."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        out: list[Message] = []
        while len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            if size > self._max:
                raise ChannelError(f"frame of {size} bytes is over the {self._max}-byte limit")
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            try:
                message = json.loads(body)
            except ValueError as err:  # UnicodeDecodeError is one
                raise ChannelError(f"frame is not JSON: {err}") from None
            if not isinstance(message, dict) or not isinstance(message.get("t"), str):
                raise ChannelError("frame is not an object with a string 't'")
            out.append(message)
        return out
