"""Wire format of the speaker membership protocol (version 1).

One UDP datagram carries one message. All integers are big-endian::

    off  size  field
    0    2     magic b"IL"
    2    1     version (1)
    3    1     type (1 = HEARTBEAT, 2 = LEAVE, 3 = NOTICE, 4 = HOLDS)
    4    8     incarnation: random non-zero id of the sender's process (boot id)
    12   8     seq: sender's sequence number, non-zero, strictly increasing per incarnation
    20   8     echo_incarnation: the receiver's incarnation as last seen by the sender (0 = none)
    28   8     echo_seq: the receiver's highest seq seen by the sender (0 = none)
    36   1     n = length of the sender name, 1..253
    37   n     sender name, UTF-8
    ..   1     m = length of the destination name, 1..253
    ..   m     destination name, UTF-8
    ..   2     p = payload length
    ..   p     payload (HEARTBEAT: member-list digest, generation, table hash and
                 optionally the sender's view; LEAVE and NOTICE: member entries; HOLDS: the restart holds in
                 force at the sender, for a member that starts during one, see ``hold``; see ``fsm``)
    ..   32    HMAC-SHA256(secret, every byte before it)

The MAC covers the whole datagram, so nothing unauthenticated is ever parsed
beyond the fixed magic/version check. There is no wall-clock timestamp on
purpose: freshness is proven by the echo fields (the sender proves it has seen a
recent packet of the receiver, a nonce exchange), which needs no clock
synchronisation between nodes. See ``fsm`` for the rules.

``decode`` raises only ``WireError`` (a ``ValueError``) for any input.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "MAC_LEN",
    "MAGIC",
    "MAX_DATAGRAM",
    "MAX_NAME",
    "MIN_DATAGRAM",
    "MIN_SECRET_LEN",
    "VERSION",
    "MsgType",
    "Packet",
    "WireError",
    "decode",
    "encode",
    "member_list_key",
]

MAGIC = b"IL"
VERSION = 1
MAC_LEN = 32
MAX_NAME = 253  # a DNS name, which is what Kubernetes node names are
MIN_SECRET_LEN = 16


def member_list_key(members: Mapping[str, tuple[str, int]]) -> bytes:
    """The HMAC key of ``ironlb run --insecure-no-secret``: SHA-256 of the member list. NOT a secret.

    Anyone who knows the member list (every node's command line shows it) can sign packets with it, so it
    authenticates nothing. It only keeps members that share no list apart, e.g. two clusters on one LAN, and
    it is derived from nothing built into ironlb.
    """
    canonical = "\n".join(f"{name}={addr}:{port}" for name, (addr, port) in sorted(members.items()))
    return hashlib.sha256(canonical.encode("utf-8")).digest()


# Far above what a few hundred members need (the view is one bit per member) and
# small enough that a flood of oversized junk is dropped before any HMAC work.
MAX_DATAGRAM = 8192

_HEADER = struct.Struct("!2sBBQQQQ")
_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")
_U64_MAX = (1 << 64) - 1
# header + two 1-byte names with their length bytes + payload length + MAC
MIN_DATAGRAM = _HEADER.size + 2 * (1 + 1) + _U16.size + MAC_LEN


class MsgType(enum.IntEnum):
    """Message types; unknown values are rejected (after authentication): a release that does not know HOLDS
    drops it as ``malformed`` and is otherwise unaffected."""

    HEARTBEAT = 1
    LEAVE = 2
    NOTICE = 3
    HOLDS = 4


class WireError(ValueError):
    """A datagram that is not a valid, authentic version-1 message.

    ``reason`` is a short stable token (``malformed``, ``version``, ``bad_mac``)
    suitable for a metric label.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded (and authenticated) message."""

    type: MsgType
    sender: str
    dest: str
    incarnation: int
    seq: int
    echo_incarnation: int = 0
    echo_seq: int = 0
    payload: bytes = b""


def _name_bytes(name: str, what: str) -> bytes:
    raw = name.encode("utf-8")
    if not 1 <= len(raw) <= MAX_NAME:
        raise ValueError(f"{what} name must be 1..{MAX_NAME} bytes of UTF-8, got {len(raw)}")
    return raw


def encode(packet: Packet, secret: bytes) -> bytes:
    """Serialise and sign ``packet``; raises ``ValueError`` on out-of-range fields."""
    for field, value in (
        ("incarnation", packet.incarnation),
        ("seq", packet.seq),
    ):
        if not 1 <= value <= _U64_MAX:
            raise ValueError(f"{field} must be a non-zero u64, got {value}")
    for field, value in (
        ("echo_incarnation", packet.echo_incarnation),
        ("echo_seq", packet.echo_seq),
    ):
        if not 0 <= value <= _U64_MAX:
            raise ValueError(f"{field} must be a u64, got {value}")
    if len(packet.payload) > 0xFFFF:
        raise ValueError("payload too long")
    sender = _name_bytes(packet.sender, "sender")
    dest = _name_bytes(packet.dest, "destination")
    body = b"".join(
        (
            _HEADER.pack(
                MAGIC,
                VERSION,
                int(packet.type),
                packet.incarnation,
                packet.seq,
                packet.echo_incarnation,
                packet.echo_seq,
            ),
            _U8.pack(len(sender)),
            sender,
            _U8.pack(len(dest)),
            dest,
            _U16.pack(len(packet.payload)),
            packet.payload,
        )
    )
    if len(body) + MAC_LEN > MAX_DATAGRAM:
        raise ValueError(f"datagram would be {len(body) + MAC_LEN} bytes, limit {MAX_DATAGRAM}")
    return body + hmac.digest(secret, body, hashlib.sha256)


def _name(data: bytes, off: int, end: int, what: str) -> tuple[str, int]:
    if off >= end:
        raise WireError("malformed", f"truncated before {what} name")
    n = data[off]
    off += 1
    if n == 0 or off + n > end:
        raise WireError("malformed", f"bad {what} name length {n}")
    try:
        name = data[off : off + n].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("malformed", f"{what} name is not UTF-8") from exc
    return name, off + n


def decode(data: bytes, secrets: Sequence[bytes]) -> Packet:
    """Authenticate and parse one datagram.

    ``secrets`` are tried in order (several allow a rolling key change). Raises
    ``WireError`` and nothing else, whatever ``data`` is.
    """
    size = len(data)
    if size < MIN_DATAGRAM:
        raise WireError("malformed", f"datagram of {size} bytes is too short")
    if size > MAX_DATAGRAM:
        raise WireError("malformed", f"datagram of {size} bytes is too long")
    if data[:2] != MAGIC:
        raise WireError("malformed", "bad magic")
    if data[2] != VERSION:
        raise WireError("version", f"unsupported version {data[2]}")
    end = size - MAC_LEN
    body = data[:end]
    mac = data[end:]
    if not any(hmac.compare_digest(hmac.digest(s, body, hashlib.sha256), mac) for s in secrets):
        raise WireError("bad_mac", "authentication failed")
    # Authentic from here on: what follows only guards against our own bugs or a
    # member running a newer, incompatible release with the same key.
    _magic, _version, mtype, inc, seq, echo_inc, echo_seq = _HEADER.unpack_from(body)
    try:
        msg_type = MsgType(mtype)
    except ValueError as exc:
        raise WireError("malformed", f"unknown message type {mtype}") from exc
    if inc == 0 or seq == 0:
        raise WireError("malformed", "zero incarnation or sequence number")
    off = _HEADER.size
    sender, off = _name(body, off, end, "sender")
    dest, off = _name(body, off, end, "destination")
    if off + _U16.size > end:
        raise WireError("malformed", "truncated before payload length")
    (plen,) = _U16.unpack_from(body, off)
    off += _U16.size
    if off + plen != end:
        raise WireError("malformed", "payload length does not match datagram size")
    return Packet(
        type=msg_type,
        sender=sender,
        dest=dest,
        incarnation=inc,
        seq=seq,
        echo_incarnation=echo_inc,
        echo_seq=echo_seq,
        payload=bytes(body[off:end]),
    )
