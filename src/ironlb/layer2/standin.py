"""Standing in for a restarting node (sans-I/O): answer ARP/NDP for its IPs with its MAC, and watch that it is up.

A restarting speaker's node keeps its IPs (``ironlb.membership.hold``): its kernel and kube-proxy go on forwarding
their traffic, but nobody answers a client that asks for one of them. For each of its IPs the member that would
take it over stands in: it answers requests with the *held node's* MAC (the Ethernet source stays its own, so no
switch learns the held MAC on the wrong port) and sends no gratuitous ARP / unsolicited NA, so clients keep
sending to the held node.

Which MAC on which of our interfaces: the held node names its MACs and its own address on each of its interfaces.
We probe each address (ARP, or NDP for IPv6) unicast to that MAC on each of our interfaces every
``probe_interval``; the held node's kernel answers while the node is up, and only on an interface of ours that
shares the segment. So we answer only where that MAC was heard within ``dead_after``, and when no probe has been
answered for ``dead_after`` (the node died, its link went down) the held node is reported unreachable: the
membership ends the hold and the normal failover follows, costing about what a crash costs, not the whole hold.

A stand-in for an IP ends when the IP is claimed on the wire (the restarted speaker's gratuitous ARP with its
unchanged MAC, or another node taking over), when the membership ends the hold, or, once the held node's new
incarnation is back (``returned``), ``grace`` seconds later at the latest.

Time and frames' contents in, what to answer and probe out: the responder (``responder``) does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

__all__ = ["MIN_UNANSWERED", "HeldLink", "StandIns"]

MIN_UNANSWERED = 3
"""Probe rounds without an answer before a held node counts as stopped (besides ``dead_after`` of silence)."""

IPAddress = IPv4Address | IPv6Address


class HeldLink(NamedTuple):
    """The held node's MAC on one of its interfaces and its own address there (what the membership hold names)."""

    mac: bytes
    address: IPAddress


@dataclass(slots=True, eq=False)
class _Held:
    links: tuple[HeldLink, ...]
    ips: set[IPAddress]
    since: float
    heard: dict[tuple[str, int], float] = field(default_factory=dict)  # (our link, held link index) -> last answer
    returned_at: float | None = None
    reported: bool = False
    unanswered: int = 0  # probe rounds since the last answer


class StandIns:
    """The held nodes this node stands in for; see the module doc."""

    def __init__(self, *, dead_after: float = 0.35, grace: float = 2.0) -> None:
        self.dead_after = dead_after
        self.grace = grace
        self._held: dict[str, _Held] = {}
        self._paused = False
        self._maps: dict[str, dict[IPAddress, bytes]] | None = None  # our link -> ip -> MAC to answer with

    # ------------------------------------------------------------------ inputs
    def hold(self, name: str, links: Sequence[HeldLink], ips: Iterable[IPAddress], now: float) -> None:
        """Stand in for ``name`` (again, or for more IPs of it)."""
        held = self._held.get(name)
        if held is None or held.links != tuple(links):
            held = self._held[name] = _Held(tuple(links), set(), now)
        held.ips.update(ips)
        held.returned_at = None
        self._maps = None

    def returned(self, name: str, now: float) -> None:
        """Its new incarnation is back: answer until its own claims, ``grace`` at most."""
        held = self._held.get(name)
        if held is not None and held.returned_at is None:
            held.returned_at = now

    def drop(self, name: str) -> None:
        if self._held.pop(name, None) is not None:
            self._maps = None

    def pause(self, paused: bool) -> None:
        """No quorum: answer nothing (the probes go on, so the state is right when it comes back)."""
        if paused != self._paused:
            self._paused = paused
            self._maps = None

    def heard(self, link: str, address: IPAddress, mac: bytes, now: float) -> bool:
        """A frame on our ``link`` says ``address`` is at ``mac``: a probe answer if it is a held link's."""
        found = False
        for held in self._held.values():
            for index, hl in enumerate(held.links):
                if hl.address == address and hl.mac == mac:
                    if (link, index) not in held.heard:
                        self._maps = None
                    held.heard[(link, index)] = now
                    held.unanswered = 0
                    found = True
        return found

    def claimed(self, ip: IPAddress, mac: bytes) -> str | None:
        """``ip`` was claimed on the wire by ``mac``: stop standing in for it; the held node's name, if we did."""
        for name, held in self._held.items():
            if ip in held.ips:
                held.ips.discard(ip)
                self._maps = None
                return name
        return None

    def expire(self, now: float) -> list[str]:
        """Forget what is over; return held nodes that stopped answering (each once): the caller ends the hold."""
        unreachable: list[str] = []
        for name in list(self._held):
            held = self._held[name]
            if held.returned_at is not None and (now - held.returned_at >= self.grace or not held.ips):
                del self._held[name]
                self._maps = None
                continue
            for key in [k for k, t in held.heard.items() if now - t > self.dead_after]:
                del held.heard[key]
                self._maps = None
            last = max(held.heard.values(), default=held.since)
            # Silence for dead_after *and* several probes sent meanwhile: a stall of our own loop (no probes
            # sent, none read) on a loaded machine is not the held node's death.
            silent = now - last > self.dead_after and held.unanswered >= MIN_UNANSWERED
            if held.returned_at is None and not held.reported and silent:
                held.reported = True
                unreachable.append(name)
        return unreachable

    # ------------------------------------------------------------------ outputs
    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._held)

    def probes(self) -> list[HeldLink]:
        """The held nodes' addresses to probe now (every ``probe_interval``); counts one round per held node."""
        out: list[HeldLink] = []
        for held in self._held.values():
            if held.returned_at is None:
                held.unanswered += 1
                out += held.links
        return out

    def answers(self, link: str) -> dict[IPAddress, bytes]:
        """On our ``link``: each stand-in IP and the held MAC to answer it with."""
        if self._maps is None:
            self._maps = self._build()
        return self._maps.get(link, {})

    def all_ips(self) -> set[IPAddress]:
        return {ip for held in self._held.values() for ip in held.ips}

    def counts(self) -> dict[str, int]:
        """Per held node, how many of its IPs we still stand in for."""
        return {name: len(held.ips) for name, held in self._held.items()}

    def ips_of(self, name: str) -> set[IPAddress]:
        held = self._held.get(name)
        return set(held.ips) if held is not None else set()

    def holder(self, ip: IPAddress) -> str | None:
        """The held node whose ``ip`` we stand in for, if any."""
        return next((name for name, held in self._held.items() if ip in held.ips), None)

    def _build(self) -> dict[str, dict[IPAddress, bytes]]:
        maps: dict[str, dict[IPAddress, bytes]] = {}
        if self._paused:
            return maps
        for held in self._held.values():
            for link, index in sorted(held.heard):
                mac = held.links[index].mac
                answers = maps.setdefault(link, {})
                for ip in held.ips:
                    answers.setdefault(ip, mac)
        return maps
