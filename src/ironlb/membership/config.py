"""Membership configuration: timings and policy, member names and addresses.

Everything here is checked once, when a ``Membership`` is built or its member
list changes, so the protocol core never sees a malformed name or address.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_PORT",
    "Address",
    "MembershipConfig",
    "QuorumMode",
    "check_address",
    "check_name",
    "new_incarnation",
    "parse_members",
]

DEFAULT_PORT = 7946

Address = tuple[str, int]
QuorumMode = Literal["auto", "on", "off"]


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """Timings and policy. The defaults aim at failover p50 < 500 ms including GARP.

    ``interval``: heartbeat period. ``dead_timeout``: silence after which a
    member is down; also the freshness window of the echo (see ``replay``).
    ``quorum``: ``"auto"`` (on for 3+ members), ``"on"`` or ``"off"``.
    ``leave_copies``: LEAVE datagrams per member on a clean stop (UDP may drop
    one). ``carry_views``: put the sender's alive set in each heartbeat.
    ``full_mesh_max``: up to this many members, everybody watches everybody.
    ``rings``: above it, each node is watched by its two ring neighbours on
    this many hash rings. ``sync_interval``: least time between two table
    syncs with the same neighbour (a settling one: two intervals, ``gossip``). ``hold_max``: the longest restart hold
    accepted from a member (``hold``); a longer one is rejected and counted.
    """

    interval: float = 0.1
    dead_timeout: float = 0.35
    quorum: QuorumMode = "auto"
    leave_copies: int = 2
    carry_views: bool = True
    full_mesh_max: int = 12
    rings: int = 4
    sync_interval: float = 1.0
    hold_max: float = 30.0

    def __post_init__(self) -> None:
        if not (self.interval > 0 and math.isfinite(self.interval)):
            raise ValueError(f"interval must be a positive number of seconds, got {self.interval}")
        if not (self.dead_timeout >= 2 * self.interval and math.isfinite(self.dead_timeout)):
            raise ValueError(
                f"dead_timeout ({self.dead_timeout}) must be at least 2 * interval ({self.interval}) "
                "so that a single lost heartbeat is not a failure"
            )
        if self.quorum not in ("auto", "on", "off"):
            raise ValueError(f"quorum must be 'auto', 'on' or 'off', got {self.quorum!r}")
        if self.leave_copies < 1:
            raise ValueError("leave_copies must be at least 1")
        if self.full_mesh_max < 1:
            raise ValueError("full_mesh_max must be at least 1")
        if not 2 <= self.rings <= 16:
            raise ValueError(f"rings must be 2..16 (one ring is a chain that any two failures cut), got {self.rings}")
        if not (self.sync_interval >= self.interval and math.isfinite(self.sync_interval)):
            raise ValueError(f"sync_interval ({self.sync_interval}) must be at least interval ({self.interval})")
        if not 0 <= self.hold_max <= 60:
            raise ValueError(f"hold_max must be 0..60 seconds (0 accepts no restart hold), got {self.hold_max}")


def new_incarnation() -> int:
    """A random non-zero 64-bit boot id (randomness, not time: the core reads no clock)."""
    return secrets.randbits(64) or 1


def check_name(name: str) -> str:
    """``name`` if it is a valid member name (it goes on the wire as 1..253 bytes)."""
    if not isinstance(name, str):
        raise TypeError(f"member name must be a str, got {type(name).__name__}")
    size = len(name.encode("utf-8"))
    if not 1 <= size <= 253:
        raise ValueError(f"member name must be 1..253 bytes of UTF-8: {name!r}")
    return name


def check_address(addr: tuple[str, int]) -> Address:
    """``addr`` normalised; literal IPs only: resolving a name would be blocking I/O in the send path."""
    host, port = addr
    ip = ipaddress.ip_address(host)
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port out of range: {port}")
    return (str(ip), int(port))


def parse_members(spec: str, default_port: int = DEFAULT_PORT) -> dict[str, Address]:
    """Parse ``NAME=ADDR[:PORT],...`` (IPv6 as ``[ADDR]:PORT`` or bare ``ADDR``).

    This is the static form used by ``ironlb run --members``.
    """
    members: dict[str, Address] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, where = item.partition("=")
        name, where = name.strip(), where.strip()
        if not sep or not name or not where:
            raise ValueError(f"member must be NAME=ADDR[:PORT], got {item!r}")
        if where.startswith("["):
            host, bracket, rest = where[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"bad bracketed address in {item!r}")
            port = int(rest[1:]) if rest else default_port
        elif where.count(":") == 1:
            host, _, port_s = where.partition(":")
            port = int(port_s)
        else:  # IPv4 without port, or bare IPv6
            host, port = where, default_port
        if name in members:
            raise ValueError(f"duplicate member {name!r}")
        members[check_name(name)] = check_address((host, port))
    return members
