"""KEEPALIVE: a bare header (RFC 4271 4.4)."""

from __future__ import annotations

from dataclasses import dataclass

from .common import MessageType
from .header import frame


@dataclass(frozen=True)
class KeepaliveMessage:
    """KEEPALIVE (header only)."""


def encode_keepalive() -> bytes:
    """KEEPALIVE: a bare header."""
    return frame(MessageType.KEEPALIVE, b"")
