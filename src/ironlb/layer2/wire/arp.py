"""Ethernet + ARP (RFC 826) codec (the responder's answer is :func:`ironlb.layer2.fsm.decide_arp`).

Only Ethernet/IPv4 ARP is understood: that is all a load-balancer VIP needs, and
everything else is dropped with :class:`ArpError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from ironlb.layer2.wire.ethernet import (
    BROADCAST_MAC,
    ETH_P_ARP,
    ETH_P_IP,
    ZERO_MAC,
    FrameError,
    build_ethernet,
    check_mac,
    parse_ethertype,
)

ARP_REQUEST = 1
ARP_REPLY = 2
HTYPE_ETHERNET = 1
ARP_PAYLOAD_LEN = 28

_ARP = struct.Struct("!HHBBH6s4s6s4s")


class ArpError(FrameError):
    """The frame is not a well-formed Ethernet/IPv4 ARP packet."""


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """One ARP packet with its Ethernet addressing."""

    eth_dst: bytes
    eth_src: bytes
    op: int
    sender_mac: bytes
    sender_ip: IPv4Address
    target_mac: bytes
    target_ip: IPv4Address

    @property
    def is_gratuitous(self) -> bool:
        """Sender and target IP equal: an announcement, not a question."""
        return self.sender_ip == self.target_ip


def parse_arp(frame: bytes) -> ArpPacket:
    """Parse an Ethernet frame carrying ARP; trailing padding is ignored."""
    header, payload = parse_ethertype(frame, ETH_P_ARP, ARP_PAYLOAD_LEN, ArpError, "ARP", "ARP payload")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(payload)
    if htype != HTYPE_ETHERNET or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        raise ArpError(f"unsupported ARP htype={htype} ptype=0x{ptype:04x} hlen={hlen} plen={plen}")
    if op not in (ARP_REQUEST, ARP_REPLY):
        raise ArpError(f"unsupported ARP operation {op}")
    return ArpPacket(
        eth_dst=header.dst,
        eth_src=header.src,
        op=op,
        sender_mac=sha,
        sender_ip=IPv4Address(spa),
        target_mac=tha,
        target_ip=IPv4Address(tpa),
    )


def build_arp(packet: ArpPacket) -> bytes:
    """Serialise an :class:`ArpPacket` into an Ethernet frame (42 bytes, unpadded)."""
    if packet.op not in (ARP_REQUEST, ARP_REPLY):
        raise ArpError(f"unsupported ARP operation {packet.op}")
    payload = _ARP.pack(
        HTYPE_ETHERNET,
        ETH_P_IP,
        6,
        4,
        packet.op,
        check_mac(packet.sender_mac, "sender MAC"),
        packet.sender_ip.packed,
        check_mac(packet.target_mac, "target MAC"),
        packet.target_ip.packed,
    )
    return build_ethernet(packet.eth_dst, packet.eth_src, ETH_P_ARP, payload)


def build_request(our_mac: bytes, our_ip: IPv4Address, target_ip: IPv4Address) -> bytes:
    """A broadcast who-has request (used by tests and tools, not by the responder)."""
    return build_arp(ArpPacket(BROADCAST_MAC, our_mac, ARP_REQUEST, our_mac, our_ip, ZERO_MAC, target_ip))


def build_reply(request: ArpPacket, our_mac: bytes) -> bytes:
    """The unicast is-at answer to ``request``: target IP is at ``our_mac``."""
    return build_arp(
        ArpPacket(
            eth_dst=request.sender_mac,
            eth_src=our_mac,
            op=ARP_REPLY,
            sender_mac=our_mac,
            sender_ip=request.target_ip,
            target_mac=request.sender_mac,
            target_ip=request.sender_ip,
        )
    )


def build_gratuitous(ip: IPv4Address, our_mac: bytes, at_mac: bytes | None = None) -> tuple[bytes, bytes]:
    """Gratuitous ARP request and reply, both broadcast with sender = target = ``ip``.

    Both are sent because clients differ in which one they honour (as MetalLB does).
    The request's target MAC is zero (RFC 5227 announcement); the reply's target MAC
    is the announced one, which is what Linux requires to treat a reply as gratuitous.
    ``at_mac`` announces ``ip`` at another host's MAC, sent from ours (a give-back).
    """
    mac = our_mac if at_mac is None else at_mac
    request = ArpPacket(BROADCAST_MAC, our_mac, ARP_REQUEST, mac, ip, ZERO_MAC, ip)
    reply = ArpPacket(BROADCAST_MAC, our_mac, ARP_REPLY, mac, ip, mac, ip)
    return build_arp(request), build_arp(reply)
