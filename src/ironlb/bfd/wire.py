"""BFD control packet codec (RFC 5880 §4.1), sans-I/O.

Mandatory section, 24 bytes, network byte order::

     0                   1                   2                   3
    |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
    |                       My Discriminator                        |
    |                      Your Discriminator                       |
    |                    Desired Min TX Interval                    |
    |                   Required Min RX Interval                    |
    |                 Required Min Echo RX Interval                 |

Intervals are in microseconds on the wire and in this module.

**Authentication** (§4.4, §6.7.4): Keyed SHA1 and Meticulous Keyed SHA1 only
(the A bit and a 28-byte section after the mandatory one). :func:`decode` checks
the section's shape and keeps it in :attr:`ControlPacket.auth`; whether the
digest and sequence number are acceptable is the session's business
(:func:`sha1_digest_ok` with its key). Simple password and MD5 are refused:
SHA1 is the strongest the RFC defines and what BIRD offers. The key is never
part of this module: it comes from the configuration.

:func:`decode` applies every check of RFC 5880 §6.8.6 that needs only the
packet itself and raises :class:`BFDPacketError` (and nothing else) for any
input it refuses. The checks that need a session (Your Discriminator lookup,
TTL) are done by the session and the service.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, replace
from enum import IntEnum

VERSION = 1
HEADER_LEN = 24
_HEADER = struct.Struct("!BBBBIIIII")
MAX_U32 = 0xFFFFFFFF


class BFDPacketError(ValueError):
    """A BFD control packet that must be discarded (RFC 5880 §6.8.6); the message says why."""


class BFDState(IntEnum):
    """bfd.SessionState values (RFC 5880 §4.1 "Sta")."""

    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


class Diag(IntEnum):
    """Diagnostic codes (RFC 5880 §4.1). Received packets may carry other values 9..31; they stay plain ints."""

    NONE = 0
    CONTROL_DETECTION_EXPIRED = 1
    ECHO_FUNCTION_FAILED = 2
    NEIGHBOR_SIGNALED_DOWN = 3
    FORWARDING_PLANE_RESET = 4
    PATH_DOWN = 5
    CONCATENATED_PATH_DOWN = 6
    ADMINISTRATIVELY_DOWN = 7
    REVERSE_CONCATENATED_PATH_DOWN = 8


class AuthType(IntEnum):
    """The authentication types ironlb speaks (RFC 5880 §4.1 "Auth Type")."""

    KEYED_SHA1 = 4
    METICULOUS_KEYED_SHA1 = 5


SHA1_AUTH_LEN = 28
SHA1_DIGEST_LEN = 20
MAX_SHA1_KEY_LEN = 20
_AUTH = struct.Struct("!BBBBI")


@dataclass(frozen=True)
class AuthSection:
    """A Keyed SHA1 section (§4.4): ``digest`` is the SHA1 of the packet with the key in its place."""

    auth_type: AuthType
    key_id: int
    sequence: int
    digest: bytes = bytes(SHA1_DIGEST_LEN)
    reserved: int = 0

    def encode(self) -> bytes:
        if len(self.digest) != SHA1_DIGEST_LEN or not 0 <= self.key_id <= 255 or not 0 <= self.sequence <= MAX_U32:
            raise BFDPacketError("SHA1 authentication section out of range")
        head = _AUTH.pack(int(self.auth_type), SHA1_AUTH_LEN, self.key_id, self.reserved & 0xFF, self.sequence)
        return head + self.digest


_F_POLL = 0x20
_F_FINAL = 0x10
_F_CPI = 0x08
_F_AUTH = 0x04
_F_DEMAND = 0x02
_F_MULTIPOINT = 0x01


@dataclass(frozen=True)
class ControlPacket:
    """One BFD control packet (no authentication section; see the module docstring)."""

    state: BFDState
    my_discriminator: int
    your_discriminator: int = 0
    diag: int = Diag.NONE
    detect_mult: int = 3
    desired_min_tx: int = 1_000_000  # microseconds
    required_min_rx: int = 1_000_000  # microseconds
    required_min_echo_rx: int = 0  # microseconds; 0: we do not loop echo packets back
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False
    demand: bool = False
    auth: AuthSection | None = None

    def encode(self) -> bytes:
        """Wire form. Raises :class:`BFDPacketError` for a packet we must never send."""
        if not 0 <= int(self.diag) <= 31:
            raise BFDPacketError(f"diag {self.diag} does not fit in 5 bits")
        if not 1 <= self.detect_mult <= 255:
            raise BFDPacketError(f"detect mult {self.detect_mult} out of range 1-255")
        if self.poll and self.final:
            raise BFDPacketError("poll and final must not both be set (RFC 5880 §4.1)")
        if not 1 <= self.my_discriminator <= MAX_U32:
            raise BFDPacketError("my discriminator must be a nonzero 32-bit value")
        for name in ("your_discriminator", "desired_min_tx", "required_min_rx", "required_min_echo_rx"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_U32:
                raise BFDPacketError(f"{name} {value} does not fit in 32 bits")
        flags = (int(self.state) << 6) | (_F_POLL if self.poll else 0) | (_F_FINAL if self.final else 0)
        flags |= (_F_CPI if self.control_plane_independent else 0) | (_F_DEMAND if self.demand else 0)
        auth = self.auth.encode() if self.auth is not None else b""
        flags |= _F_AUTH if auth else 0
        return (
            _HEADER.pack(
                (VERSION << 5) | int(self.diag),
                flags,
                self.detect_mult,
                HEADER_LEN + len(auth),
                self.my_discriminator,
                self.your_discriminator,
                self.desired_min_tx,
                self.required_min_rx,
                self.required_min_echo_rx,
            )
            + auth
        )


def _sha1_over(pkt: ControlPacket, key: bytes) -> bytes:
    """SHA1 of the packet with the key (zero-padded to 20 bytes) in the digest field (§6.7.4)."""
    if pkt.auth is None or not 1 <= len(key) <= MAX_SHA1_KEY_LEN:
        raise BFDPacketError("SHA1 authentication needs an auth section and a key of 1-20 bytes")
    keyed = replace(pkt, auth=replace(pkt.auth, digest=key.ljust(SHA1_DIGEST_LEN, b"\0")))
    return hashlib.sha1(keyed.encode()).digest()


def sign_sha1(pkt: ControlPacket, key: bytes) -> ControlPacket:
    """``pkt`` (with its auth section's type, key ID and sequence number) carrying the SHA1 digest."""
    assert pkt.auth is not None
    return replace(pkt, auth=replace(pkt.auth, digest=_sha1_over(pkt, key)))


def sha1_digest_ok(pkt: ControlPacket, key: bytes) -> bool:
    """True when the packet's digest is the SHA1 computed with ``key`` (constant-time comparison)."""
    if pkt.auth is None:
        return False
    return hmac.compare_digest(pkt.auth.digest, _sha1_over(pkt, key))


def decode(data: bytes) -> ControlPacket:
    """Parse and validate one control packet (the UDP payload).

    Raises :class:`BFDPacketError` when RFC 5880 §6.8.6 says to discard it:
    version not 1, length field below 24 or above the payload, detect mult 0,
    multipoint bit set, my discriminator 0, your discriminator 0 while the
    state is neither Down nor AdminDown; also when the A bit is set (no
    authentication is supported) and when both P and F are set (§4.1).
    Bytes after ``Length`` (UDP padding) are ignored.
    """
    if len(data) < HEADER_LEN:
        raise BFDPacketError(f"packet of {len(data)} bytes is shorter than {HEADER_LEN}")
    vers_diag, flags, detect_mult, length, my_disc, your_disc, tx, rx, echo_rx = _HEADER.unpack_from(data)
    version = vers_diag >> 5
    if version != VERSION:
        raise BFDPacketError(f"unsupported version {version}")
    if length < HEADER_LEN:
        raise BFDPacketError(f"length field {length} below {HEADER_LEN}")
    if length > len(data):
        raise BFDPacketError(f"length field {length} exceeds the payload of {len(data)} bytes")
    if detect_mult == 0:
        raise BFDPacketError("detect mult is zero")
    if flags & _F_MULTIPOINT:
        raise BFDPacketError("multipoint bit is set")
    if my_disc == 0:
        raise BFDPacketError("my discriminator is zero")
    state = BFDState(flags >> 6)
    if your_disc == 0 and state not in (BFDState.DOWN, BFDState.ADMIN_DOWN):
        raise BFDPacketError(f"your discriminator is zero in state {state.name}")
    poll, final = bool(flags & _F_POLL), bool(flags & _F_FINAL)
    if poll and final:
        raise BFDPacketError("poll and final both set")
    diag_raw = vers_diag & 0x1F
    diag: int = Diag(diag_raw) if diag_raw <= max(Diag) else diag_raw
    auth = _decode_auth(data, length) if flags & _F_AUTH else None
    return ControlPacket(
        state=state,
        my_discriminator=my_disc,
        your_discriminator=your_disc,
        diag=diag,
        detect_mult=detect_mult,
        desired_min_tx=tx,
        required_min_rx=rx,
        required_min_echo_rx=echo_rx,
        poll=poll,
        final=final,
        control_plane_independent=bool(flags & _F_CPI),
        demand=bool(flags & _F_DEMAND),
        auth=auth,
    )


def _decode_auth(data: bytes, length: int) -> AuthSection:
    if length < HEADER_LEN + 2:
        raise BFDPacketError("authentication (A bit) without an authentication section")
    auth_type, auth_len = data[HEADER_LEN], data[HEADER_LEN + 1]
    if auth_type not in (AuthType.KEYED_SHA1, AuthType.METICULOUS_KEYED_SHA1):
        raise BFDPacketError(f"authentication type {auth_type} is not supported (Keyed SHA1 only)")
    if auth_len != SHA1_AUTH_LEN or length != HEADER_LEN + SHA1_AUTH_LEN:
        raise BFDPacketError(f"SHA1 authentication section of {auth_len} bytes in a packet of length {length}")
    _t, _l, key_id, reserved, seq = _AUTH.unpack_from(data, HEADER_LEN)
    digest = bytes(data[HEADER_LEN + _AUTH.size : HEADER_LEN + SHA1_AUTH_LEN])
    return AuthSection(AuthType(auth_type), key_id, seq, digest, reserved)


# ---------------------------------------------------------------------------------------------- echo
#
# RFC 5880 §6.4 / RFC 5881 §4: an echo packet is a UDP datagram to port 3785 that the peer's forwarding plane
# sends back to us. Its payload is ours alone to define (the peer never parses it). For IPv4 it is addressed
# from and to our own address and handed to the peer's MAC (a packet socket), so the peer's kernel routes it
# straight back, its TTL lowered by one; FRR's bfdd does the same. Payload (12 bytes)::
#
#     | version (1) | length (12) | reserved (2) | my discriminator (4) | sequence number (4) |

ECHO_PORT = 3785
ECHO_LEN = 12
ECHO_VERSION = 1
_ECHO = struct.Struct("!BBHII")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
IPV4_HEADER_LEN = 20
UDP_HEADER_LEN = 8
IPPROTO_UDP = 17
_TOS_CS6 = 0xC0


@dataclass(frozen=True)
class EchoPacket:
    """Our echo payload: the session's discriminator and a sequence number (to match returns to what was sent)."""

    discriminator: int
    sequence: int

    def encode(self) -> bytes:
        if not 1 <= self.discriminator <= MAX_U32 or not 0 <= self.sequence <= MAX_U32:
            raise BFDPacketError("echo discriminator must be nonzero and both fields 32-bit")
        return _ECHO.pack(ECHO_VERSION, ECHO_LEN, 0, self.discriminator, self.sequence)


def decode_echo(data: bytes) -> EchoPacket:
    """Parse our echo payload; raises :class:`BFDPacketError` for anything we did not send."""
    if len(data) < ECHO_LEN:
        raise BFDPacketError(f"echo payload of {len(data)} bytes is shorter than {ECHO_LEN}")
    version, length, _reserved, discr, seq = _ECHO.unpack_from(data)
    if version != ECHO_VERSION or length != ECHO_LEN:
        raise BFDPacketError(f"not an ironlb echo packet (version {version}, length {length})")
    if discr == 0:
        raise BFDPacketError("echo discriminator is zero")
    return EchoPacket(discr, seq)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def echo_ipv4_datagram(address: bytes, payload: bytes, *, ident: int = 0, ttl: int = 255) -> bytes:
    """The IPv4 datagram of one echo packet, from ``address`` (4 bytes) to itself, UDP 3785 -> 3785.

    Sent through a packet socket to the peer's MAC (RFC 5881 §4: "the destination address MUST be chosen
    in such a way as to cause the remote system to forward the packet back to the local system").
    """
    if len(address) != 4:
        raise BFDPacketError("echo address must be 4 bytes (IPv4)")
    udp_len = UDP_HEADER_LEN + len(payload)
    pseudo = address + address + struct.pack("!BBH", 0, IPPROTO_UDP, udp_len)
    udp = _UDP.pack(ECHO_PORT, ECHO_PORT, udp_len, 0) + payload
    udp_sum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    total = IPV4_HEADER_LEN + udp_len
    header = _IPV4.pack(0x45, _TOS_CS6, total, ident & 0xFFFF, 0, ttl, IPPROTO_UDP, 0, address, address)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


@dataclass(frozen=True)
class EchoDatagram:
    """A received IPv4 echo datagram: addresses (4 bytes each), TTL and the UDP payload."""

    source: bytes
    destination: bytes
    ttl: int
    payload: bytes


def parse_echo_ipv4(data: bytes) -> EchoDatagram:
    """Parse an IPv4 datagram that should carry an echo packet (header and UDP checksums checked).

    Raises :class:`BFDPacketError` for a truncated or corrupt datagram, a fragment, another protocol or a
    destination port other than 3785.
    """
    if len(data) < IPV4_HEADER_LEN + UDP_HEADER_LEN:
        raise BFDPacketError(f"datagram of {len(data)} bytes is too short for IPv4 + UDP")
    vihl, _tos, total, _ident, frag, ttl, proto, _sum, src, dst = _IPV4.unpack_from(data)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < IPV4_HEADER_LEN:
        raise BFDPacketError("not an IPv4 header")
    if total > len(data) or total < ihl + UDP_HEADER_LEN:
        raise BFDPacketError(f"IPv4 total length {total} does not fit the {len(data)} bytes received")
    if frag & 0x3FFF:
        raise BFDPacketError("fragment")
    if proto != IPPROTO_UDP:
        raise BFDPacketError(f"protocol {proto} is not UDP")
    if _checksum(data[:ihl]) != 0:
        raise BFDPacketError("bad IPv4 header checksum")
    sport, dport, udp_len, udp_sum = _UDP.unpack_from(data, ihl)
    if dport != ECHO_PORT:
        raise BFDPacketError(f"UDP port {dport} is not the echo port")
    if udp_len < UDP_HEADER_LEN or ihl + udp_len > total:
        raise BFDPacketError(f"UDP length {udp_len} does not fit the datagram")
    udp = data[ihl : ihl + udp_len]
    if udp_sum:
        pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_UDP, udp_len)
        if _checksum(pseudo + udp) != 0:
            raise BFDPacketError("bad UDP checksum")
    del sport
    return EchoDatagram(src, dst, ttl, udp[UDP_HEADER_LEN:])


__all__ = [
    "ECHO_PORT",
    "HEADER_LEN",
    "VERSION",
    "AuthSection",
    "AuthType",
    "BFDPacketError",
    "BFDState",
    "ControlPacket",
    "Diag",
    "EchoDatagram",
    "EchoPacket",
    "decode",
    "decode_echo",
    "echo_ipv4_datagram",
    "parse_echo_ipv4",
    "sha1_digest_ok",
    "sign_sha1",
]
