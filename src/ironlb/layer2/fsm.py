"""The layer 2 responder's sans-I/O core: one received ARP/NDP message in, the frame to answer with (or why not) out.

It keeps no state of its own (the announced set is passed in), so the whole responder policy is tested without
sockets; :mod:`.responder` is the shell that reads frames, calls these functions and sends the replies.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from ironlb.layer2.wire.arp import ARP_REQUEST, ArpPacket, build_reply
from ironlb.layer2.wire.ethernet import BROADCAST_MAC, is_multicast_mac
from ironlb.layer2.wire.ndp import (
    NDP_HOP_LIMIT,
    UNSPECIFIED,
    NdpMessage,
    NeighborAdvertisement,
    NeighborSolicitation,
    build_ndp,
    solicited_node_address,
)

# Reasons (stable strings: logged and asserted in tests). Both protocols:
REASON_REPLY = "reply"
REASON_FROM_SELF = "from-self"
REASON_NOT_ANNOUNCED = "not-announced"
# ARP only:
REASON_NOT_REQUEST = "not-request"
REASON_ETHERNET_NOT_OURS = "ethernet-destination-not-ours"
REASON_GRATUITOUS = "gratuitous"
# NDP only:
REASON_NOT_SOLICITATION = "not-solicitation"
REASON_BAD_HOP_LIMIT = "bad-hop-limit"
REASON_BAD_TARGET = "multicast-target"
REASON_DAD = "dad-probe"
REASON_DESTINATION_NOT_OURS = "destination-not-ours"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a responder should do with one received frame.

    ``reply`` is the frame to send, or None; ``reason`` says why (``"reply"`` when
    answering) so drops can be logged and tested; ``ip`` is the announced address the
    request was about, set only when the request targets one (it labels the metrics).
    """

    reply: bytes | None
    reason: str
    ip: str | None = None


def decide_arp(packet: ArpPacket, our_mac: bytes, announced: Collection[IPv4Address]) -> Verdict:
    """Decide whether to answer ``packet`` received on an interface with ``our_mac``.

    ``announced`` holds the IPv4 VIPs announced on that interface only, so a VIP
    limited to other interfaces is never answered here (reference 5.2).
    """
    if packet.op != ARP_REQUEST:
        return Verdict(None, REASON_NOT_REQUEST)
    if packet.eth_dst not in (BROADCAST_MAC, our_mac):
        return Verdict(None, REASON_ETHERNET_NOT_OURS)
    if packet.eth_src == our_mac or packet.sender_mac == our_mac:
        return Verdict(None, REASON_FROM_SELF)
    if packet.target_ip not in announced:
        return Verdict(None, REASON_NOT_ANNOUNCED)
    ip = str(packet.target_ip)
    if packet.is_gratuitous:
        # Someone else announcing our VIP: a reply would tell them nothing.
        return Verdict(None, REASON_GRATUITOUS, ip)
    return Verdict(build_reply(packet, our_mac), REASON_REPLY, ip)


def claimed(message: ArpPacket | NdpMessage, our_mac: bytes) -> IPv4Address | IPv6Address | None:
    """The address another host says is its own in ``message``, or None.

    A gratuitous ARP, an ARP request or reply sent from an address, or a Neighbor Advertisement (solicited or
    not) for a target, from a MAC that is not ``our_mac``. The responder uses it for hand-overs: a node giving an
    IP away keeps answering until the new owner has spoken for it, so clients never ask into silence.
    """
    if isinstance(message, ArpPacket):
        if message.sender_mac == our_mac or message.eth_src == our_mac or message.sender_ip.is_unspecified:
            return None
        return message.sender_ip
    if not isinstance(message, NeighborAdvertisement) or message.target.is_multicast:
        return None
    lladdr = message.target_lladdr if message.target_lladdr is not None else message.eth_src
    if lladdr == our_mac or message.eth_src == our_mac:
        return None
    return message.target


def decide_ndp(
    message: NdpMessage,
    our_mac: bytes,
    announced: Collection[IPv6Address],
    source_ip: IPv6Address | None = None,
) -> Verdict:
    """Decide whether to answer ``message`` received on an interface with ``our_mac``.

    Answers multicast (address resolution) and unicast (NUD) solicitations for VIPs in
    ``announced`` (those of this interface only). DAD probes (source ``::``) are never
    answered: that would make the prober give up an address that is not ours to defend
    that way. The NA goes to the solicitation's source LL option or, lacking one (NUD
    probes may omit it), to the frame's Ethernet source. The NA's IPv6 source is
    ``source_ip`` if given, else the VIP itself, as Linux does for its own addresses:
    MetalLB uses the link-local address, but tools such as ndisc6 only accept an NA
    whose source is the target (checked in the netns tests).
    """
    if not isinstance(message, NeighborSolicitation):
        return Verdict(None, REASON_NOT_SOLICITATION)
    if message.hop_limit != NDP_HOP_LIMIT:
        return Verdict(None, REASON_BAD_HOP_LIMIT)  # RFC 4861 7.1.1: off-link forgery
    if message.eth_src == our_mac or message.source_lladdr == our_mac:
        return Verdict(None, REASON_FROM_SELF)
    if message.target.is_multicast:
        return Verdict(None, REASON_BAD_TARGET)
    if message.src == UNSPECIFIED:
        return Verdict(None, REASON_DAD)
    if message.dst.is_multicast:
        addressed_to_us = message.dst == solicited_node_address(message.target) and is_multicast_mac(message.eth_dst)
    else:
        addressed_to_us = message.dst == message.target and message.eth_dst == our_mac
    if not addressed_to_us:
        return Verdict(None, REASON_DESTINATION_NOT_OURS)
    if message.target not in announced:
        return Verdict(None, REASON_NOT_ANNOUNCED)
    reply = NeighborAdvertisement(
        eth_dst=message.source_lladdr if message.source_lladdr is not None else message.eth_src,
        eth_src=our_mac,
        src=source_ip if source_ip is not None else message.target,
        dst=message.src,
        target=message.target,
        target_lladdr=our_mac,
        solicited=True,
        override=False,
    )
    return Verdict(build_ndp(reply), REASON_REPLY, str(message.target))
