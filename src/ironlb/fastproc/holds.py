"""Restart holds on a node's fast path: what joins its membership to its ARP/NDP responder (docs/membership.md
"Restart holds").

One code for both places the fast path runs: the fast process (``ironlb.fastproc.child``, the default) and a thread
of the main process (``ironlb run`` / ``ironlb speaker`` with ``--fastpath thread``). Another member's hold makes
this node stand in for its share of the held node's IPs (answer with the held node's MAC, probe its address), stop
when the hold ends, pause while there is no quorum, and end the hold when the probe finds the node gone; this node's
own restart asks the others to hold, naming its MACs and own addresses (:func:`hold_offer`).
"""

from __future__ import annotations

import fcntl
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv4Address, ip_address
from typing import TYPE_CHECKING

from ironlb.layer2.standin import HeldLink as StandInLink
from ironlb.layer2.standin_metrics import StandInMetrics
from ironlb.membership.events import Event, HoldBegun, HoldEnded, MemberHeld
from ironlb.membership.hold import MAX_LINKS, HeldLink, HoldOffer

if TYPE_CHECKING:
    from ironlb.layer2.responder import Responder
    from ironlb.membership.config import Address
    from ironlb.membership.fsm import Membership
    from ironlb.membership.service import MembershipService

__all__ = ["RestartHolds", "hold_offer", "ipv4_of", "threaded_membership"]

SIOCGIFADDR = 0x8915


def ipv4_of(name: str) -> IPv4Address | None:
    """The primary IPv4 address of interface ``name`` (what a stand-in probes), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            raw = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return IPv4Address(raw[20:24])


def hold_offer(responder: Responder | None, seconds: float, stand_in: Mapping[str, Iterable[str]]) -> HoldOffer:
    """A restart: this node's MACs and own addresses (what the stand-ins answer with and probe), and per member
    the IPs it is to stand in for (``ironlb.decide.stand_ins``)."""
    links: list[HeldLink] = []
    for iface in responder.interfaces if responder is not None else ():
        address = ipv4_of(iface.name) if iface.arp else None
        if address is None and iface.link_local is not None:
            links.append(HeldLink(iface.mac, iface.link_local))
        elif address is not None:
            links.append(HeldLink(iface.mac, address))
    ips = {str(k): [ip_address(ip) for ip in v] for k, v in stand_in.items()}
    return HoldOffer(float(seconds), tuple(links[:MAX_LINKS]), ips)


class RestartHolds:
    """Other members' holds, between the membership and the responder this node has now (either may be replaced:
    ``responder`` and ``membership`` are read at each call). Runs on the fast path's loop, as both do."""

    def __init__(
        self,
        metrics: StandInMetrics,
        responder: Callable[[], Responder | None],
        membership: Callable[[], MembershipService | None],
    ) -> None:
        self.metrics = metrics
        self._responder = responder
        self._membership = membership

    def on_event(self, event: Event) -> None:
        """A member restarting (held): stand in for our share of its IPs; its hold over: stop."""
        if isinstance(event, HoldBegun):  # once a hold (its further MemberHeld only add IPs)
            self.metrics.hold_begun(event.name)
        elif isinstance(event, HoldEnded):
            self.metrics.hold_ended(event.reason)
        responder, service = self._responder(), self._membership()
        if responder is None or service is None:
            return
        if isinstance(event, MemberHeld) and event.ips:  # only stand-ins probe: not every member of a large cluster
            links = [StandInLink(link.mac, link.address) for link in event.links]
            responder.stand_in(event.name, links, event.ips, service.membership.config.dead_timeout)
            responder.pause_stand_ins(not service.membership.has_quorum())
        elif isinstance(event, HoldEnded):
            if event.reason == "returned":
                responder.stand_in_returned(event.name)
            else:
                responder.stand_down(event.name)
        else:
            return
        responder.count_stand_ins()

    def on_unreachable(self, name: str) -> None:
        """The responder's probe of held member ``name``'s node failed: it is dead now."""
        service = self._membership()
        if service is not None:
            service.end_hold(name)

    def on_quorum(self, has_quorum: bool) -> None:
        """Without quorum nobody answers, stand-ins included (as the membership's own announcements)."""
        responder = self._responder()
        if responder is not None:
            responder.pause_stand_ins(not has_quorum)


def threaded_membership(
    core: Membership,
    responder: Responder | None,
    metrics: StandInMetrics,
    on_change: Callable[[frozenset[str], bool], None],
    *,
    bind: Address | None = None,
) -> MembershipService:
    """Thread mode's membership service (``--fastpath thread``), to run on the fast loop beside ``responder``, with
    other members' holds handled as the fast process handles them. ``on_change``: called on the fast loop (hand
    it to the main loop with ``FastPath.to_main``)."""
    from ironlb.membership.service import MembershipService

    service: MembershipService | None = None
    holds = RestartHolds(metrics, lambda: responder, lambda: service)

    def changed(alive: frozenset[str], has_quorum: bool) -> None:
        holds.on_quorum(has_quorum)
        on_change(alive, has_quorum)

    service = MembershipService(core, bind=bind, on_change=changed, on_event=holds.on_event)
    if responder is not None:
        responder.on_unreachable = holds.on_unreachable
    return service
