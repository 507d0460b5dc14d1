"""The HEARTBEAT payload: member-list digest, sender generation, sender table hash, then its alive set and flags.

The alive set is a bitmap over the sorted member list, so it is meaningful only
between nodes with the same list: the digest says whether they have it. One
flags byte follows the bitmap (bit 0: the sender has settled, ``settle``). A
sender of an older release sends the bitmap alone: its flags are unknown. A
receiver of an older release finds the bitmap one byte too long and ignores
the view (it only shows views, in ``views()``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "FLAG_SETTLED",
    "Heartbeat",
    "decode_view",
    "encode_view",
    "heartbeat_head",
    "member_digest",
    "parse_heartbeat",
    "split_view",
    "view_bit",
]

FLAG_SETTLED = 0x01
"""Flags byte: the sender has settled (its view is complete, ``settle``)."""

_VIEW_DIGEST_LEN = 8
_HEAD = struct.Struct("!8sIQ")


class Heartbeat(NamedTuple):
    digest: bytes
    generation: int
    table_hash: int
    view_bits: bytes | None


def member_digest(order: Sequence[str]) -> bytes:
    """Digest of the sorted member list, to tell whether a peer's view bitmap is comparable."""
    return hashlib.sha256("\n".join(order).encode()).digest()[:_VIEW_DIGEST_LEN]


def heartbeat_head(digest: bytes, generation: int, table_hash: int) -> bytes:
    return _HEAD.pack(digest, generation, table_hash)


def parse_heartbeat(payload: bytes) -> Heartbeat | None:
    """The fields of a verified heartbeat's payload; None if it is too short to hold them."""
    if len(payload) < _HEAD.size:
        return None
    digest, gen, thash = _HEAD.unpack_from(payload)
    view = payload[_HEAD.size :] if len(payload) > _HEAD.size else None
    return Heartbeat(digest, gen, int(thash), view)


def encode_view(order: Sequence[str], alive: frozenset[str]) -> bytes:
    """``alive`` as a bitmap over ``order`` (most significant bit first)."""
    bits = bytearray((len(order) + 7) // 8)
    for i, name in enumerate(order):
        if name in alive:
            bits[i // 8] |= 0x80 >> (i % 8)
    return bytes(bits)


def view_bit(size: int, index: int) -> int:
    """The bit of member ``index`` (of ``size``) in an ``encode_view`` bitmap read as a big-endian integer."""
    return 1 << (8 * ((size + 7) // 8) - 1 - index)


def decode_view(order: Sequence[str], bits: bytes) -> frozenset[str] | None:
    """The alive set of an ``encode_view`` bitmap over the same ``order``; None if the size does not fit."""
    if len(bits) != (len(order) + 7) // 8:
        return None
    return frozenset(n for i, n in enumerate(order) if bits[i // 8] & (0x80 >> (i % 8)))


def split_view(members: int, rest: bytes | None) -> tuple[bytes | None, int | None]:
    """The bitmap and the flags byte of what follows the head, for ``members`` members (same digest).

    ``(None, None)`` if the size fits neither form; flags ``None`` from a sender that sends none (older release).
    """
    size = (members + 7) // 8
    if rest is None:
        return None, None
    if len(rest) == size + 1:
        return rest[:size], rest[size]
    if len(rest) == size:
        return rest, None
    return None, None
