"""Ethernet framing and the shared error type of the Layer 2 codecs (ARP in :mod:`.arp`, NDP in :mod:`.ndp`).

The codecs are sans-I/O: they turn bytes into typed values and back, so the wire
format can be tested (and fuzzed) without sockets or privileges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD

ETH_HEADER_LEN = 14
MAC_LEN = 6
BROADCAST_MAC = b"\xff" * MAC_LEN
ZERO_MAC = b"\x00" * MAC_LEN

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$")


class FrameError(ValueError):
    """A frame could not be parsed or built.

    Parsers raise only this (or a subclass) on bad input, so callers reading from a
    raw socket can drop junk with a single ``except FrameError``.
    """


def mac_to_str(mac: bytes) -> str:
    """Format a MAC the way ``ip link`` prints it (lowercase, colon separated)."""
    return ":".join(f"{b:02x}" for b in mac)


def mac_from_str(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (or with dashes) into 6 bytes."""
    if not _MAC_RE.match(text):
        raise FrameError(f"invalid MAC address {text!r}")
    return bytes(int(part, 16) for part in re.split(r"[:-]", text))


def is_multicast_mac(mac: bytes) -> bool:
    """True for group addresses (I/G bit set), broadcast included."""
    return len(mac) == MAC_LEN and bool(mac[0] & 0x01)


def check_mac(mac: bytes, what: str = "MAC") -> bytes:
    """Validate a MAC before it is put on the wire; builders must not emit short frames."""
    if len(mac) != MAC_LEN:
        raise FrameError(f"{what} must be {MAC_LEN} bytes, got {len(mac)}")
    return bytes(mac)


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """The 14-byte Ethernet II header (802.1Q tags are stripped by the kernel for AF_PACKET)."""

    dst: bytes
    src: bytes
    ethertype: int


def parse_ethernet(frame: bytes) -> tuple[EthernetHeader, bytes]:
    """Split a frame into its header and payload."""
    if len(frame) < ETH_HEADER_LEN:
        raise FrameError(f"frame too short for Ethernet header: {len(frame)} bytes")
    header = EthernetHeader(
        dst=bytes(frame[0:6]),
        src=bytes(frame[6:12]),
        ethertype=int.from_bytes(frame[12:14], "big"),
    )
    return header, bytes(frame[ETH_HEADER_LEN:])


def parse_ethertype(
    frame: bytes, ethertype: int, min_payload: int, error: type[FrameError], protocol: str, payload_name: str
) -> tuple[EthernetHeader, bytes]:
    """:func:`parse_ethernet` of a frame that must carry ``ethertype`` (``protocol`` names it) and at least
    ``min_payload`` bytes of payload (``payload_name``); anything else raises ``error``, the caller's protocol's."""
    try:
        header, payload = parse_ethernet(frame)
    except FrameError as exc:
        raise error(str(exc)) from None
    if header.ethertype != ethertype:
        raise error(f"not an {protocol} frame (ethertype 0x{header.ethertype:04x})")
    if len(payload) < min_payload:
        raise error(f"{payload_name} too short: {len(payload)} bytes")
    return header, payload


def build_ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    """Prepend an Ethernet II header; padding to 60 bytes is left to the NIC, as the kernel does."""
    if not 0 <= ethertype <= 0xFFFF:
        raise FrameError(f"invalid ethertype {ethertype}")
    return check_mac(dst, "destination MAC") + check_mac(src, "source MAC") + ethertype.to_bytes(2, "big") + payload
