"""Who to peer with on an interface, and when to advertise ourselves there: the sans-I/O half of unnumbered BGP.

As FRR does for ``neighbor IFNAME interface``: the neighbour is the link-local source of the Router Advertisements
heard on the link (or a router already in the kernel's neighbour table), and we send RAs of our own, router
lifetime 0, so the router learns our link-local address too (FRR accepts a session on an unnumbered interface only
from an address it learned that way). The shell (:mod:`ironlb.bgp.unnumbered`) owns the socket and the clock; it
feeds received messages and the time in and sends what comes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Address, ip_address
from typing import Any

from .wire.ra import (
    RouterAdvertisement,
    RouterMessageError,
    RouterSolicitation,
    check_router_message,
    encode_router_message,
)

RA_INTERVAL = 10.0
"""Seconds between our RAs once started: FRR's interval on an unnumbered BGP interface."""
INITIAL_RAS = 3
"""RAs sent one second apart at start (RFC 4861 6.2.4 sends up to 3 fast ones), so a router learns us quickly."""
MIN_RA_GAP = 1.0
"""Answers to solicitations are at least this far apart: a flood of RSs cannot make us flood RAs."""
MAX_ROUTERS = 32
"""Routers remembered on one link at most: RAs from ever new sources cannot grow our memory (new ones are then
ignored until a remembered one goes stale)."""
STALE_AFTER = 600.0
"""A router not heard for this long is forgotten (the default RA interval, where FRR's is 10 s)."""


@dataclass
class LinkPeerState:
    """The neighbour heard on one link and the schedule of our own RAs.

    Inputs: :meth:`start`, :meth:`received`, :meth:`neighbour_table`, :meth:`timer`; outputs: the ICMPv6 messages
    those return (to send to ff02::1, hop limit 255), :meth:`next_deadline` and :meth:`peer`.
    """

    mac: bytes | None = None
    interval: float = RA_INTERVAL
    _heard: dict[IPv6Address, float] = field(default_factory=dict)
    _chosen: IPv6Address | None = None
    _next_ra: float | None = None
    _initial_left: int = INITIAL_RAS
    _last_ra: float | None = None
    rejected: int = 0
    """Received messages that failed the RFC 4861 checks (for logs and tests)."""

    def _advertisement(self, now: float) -> bytes:
        self._last_ra = now
        return encode_router_message(RouterAdvertisement(router_lifetime=0, source_lladdr=self.mac))

    def start(self, now: float) -> list[bytes]:
        """An RS (so the router answers now) and our first RA."""
        self._initial_left = INITIAL_RAS - 1
        self._next_ra = now + min(1.0, self.interval)
        return [encode_router_message(RouterSolicitation(self.mac)), self._advertisement(now)]

    def received(self, source: IPv6Address, hop_limit: int | None, data: bytes, now: float) -> list[bytes]:
        """A message from the link: an RA makes its source a neighbour; an RS gets an RA back."""
        try:
            msg = check_router_message(source, hop_limit, data)
        except RouterMessageError:
            self.rejected += 1
            return []
        if isinstance(msg, RouterAdvertisement):
            self._hear(source, now)
            return []
        if self._last_ra is None or now - self._last_ra >= MIN_RA_GAP:
            return [self._advertisement(now)]
        return []

    def neighbour_table(self, entries: Iterable[Mapping[str, Any]], now: float) -> None:
        """Routers the kernel already knows on this link (``ip -j -6 neigh show dev IF``), e.g. from an RA that came
        before we listened, or a static entry an operator added."""
        for address in routers_in_neighbour_table(entries):
            self._hear(address, now)

    def timer(self, now: float) -> list[bytes]:
        """Our periodic RA when it is due; forget routers not heard for :data:`STALE_AFTER`."""
        for address, seen in list(self._heard.items()):
            if now - seen > STALE_AFTER:
                del self._heard[address]
                if address == self._chosen:
                    self._chosen = None
        if self._next_ra is None or now < self._next_ra:
            return []
        if self._initial_left > 0:
            self._initial_left -= 1
        fast = self._initial_left > 0  # INITIAL_RAS in all, start's included, one second apart
        self._next_ra = now + (min(1.0, self.interval) if fast else self.interval)
        return [self._advertisement(now)]

    def next_deadline(self) -> float | None:
        """When :meth:`timer` must run next (None before :meth:`start`)."""
        return self._next_ra

    def peer(self) -> IPv6Address | None:
        """The neighbour to dial: the first router heard, kept while it is heard, so a second router on the link
        does not move an established session."""
        if self._chosen is None and self._heard:
            self._chosen = next(iter(self._heard))  # insertion order: the first heard
        return self._chosen

    def _hear(self, address: IPv6Address, now: float) -> None:
        if address in self._heard or len(self._heard) < MAX_ROUTERS:
            self._heard[address] = now


_DEAD_STATES = {"FAILED", "INCOMPLETE", "NONE"}


def routers_in_neighbour_table(entries: Iterable[Mapping[str, Any]]) -> list[IPv6Address]:
    """The link-local routers of ``ip -j -6 neigh`` output (entries flagged ``router``, not failed), in order."""
    out: list[IPv6Address] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or "router" not in entry:
            continue
        states = entry.get("state") or []
        if isinstance(states, list) and _DEAD_STATES.intersection(str(s) for s in states):
            continue
        try:
            address = ip_address(str(entry.get("dst", "")))
        except ValueError:
            continue
        if isinstance(address, IPv6Address) and address.is_link_local and address not in out:
            out.append(IPv6Address(address.packed))
    return out


__all__ = ["INITIAL_RAS", "MAX_ROUTERS", "RA_INTERVAL", "STALE_AFTER", "LinkPeerState", "routers_in_neighbour_table"]
