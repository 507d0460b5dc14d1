"""What the rest of ironlb says about a route: :class:`Attributes`, plus community parsing.

The planner hands the FSM ``Mapping[prefix, Attributes]``; everything
session-specific (AS_PATH, NEXT_HOP, whether LOCAL_PREF is sent) is added by
the FSM, so one ``Attributes`` value can be shared by all peers.  Instances
are normalised (sorted, de-duplicated) so that equal intent compares and
hashes equal, which is what lets the FSM pack identical routes together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .wire.extcommunity import MAX_LINK_BANDWIDTH

# Bandwidths are whole bytes per second; a merge never exceeds what the float32 on the wire can carry.
MAX_LINK_BANDWIDTH_INT = int(MAX_LINK_BANDWIDTH)

WELL_KNOWN_COMMUNITIES: dict[str, int] = {
    "graceful-shutdown": 0xFFFF0000,
    "accept-own": 0xFFFF0001,
    "llgr-stale": 0xFFFF0006,
    "no-llgr": 0xFFFF0007,
    "blackhole": 0xFFFF029A,
    "no-export": 0xFFFFFF01,
    "no-advertise": 0xFFFFFF02,
    "no-export-subconfed": 0xFFFFFF03,
    "local-as": 0xFFFFFF03,
    "no-peer": 0xFFFFFF04,
}

LargeCommunity = tuple[int, int, int]

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


def parse_community(text: str) -> int:
    """``"65000:100"`` or a well-known name to the 32-bit value (RFC 1997)."""
    s = text.strip().lower()
    if s in WELL_KNOWN_COMMUNITIES:
        return WELL_KNOWN_COMMUNITIES[s]
    parts = s.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"invalid community format: {text}")
    hi, lo = int(parts[0]), int(parts[1])
    if hi > _U16 or lo > _U16:
        raise ValueError(f"invalid community format: {text}")
    return (hi << 16) | lo


def format_community(value: int) -> str:
    """32-bit community to ``"hi:lo"``."""
    return f"{value >> 16}:{value & _U16}"


def parse_large_community(text: str) -> LargeCommunity:
    """``"1:2:3"`` (optionally prefixed ``large:`` as in MetalLB) to a triple (RFC 8092)."""
    s = text.strip().lower().removeprefix("large:")
    parts = s.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"invalid large community format: {text}")
    a, b, c = (int(p) for p in parts)
    if max(a, b, c) > _U32:
        raise ValueError(f"invalid large community format: {text}")
    return (a, b, c)


def format_large_community(value: LargeCommunity) -> str:
    """Triple to ``"a:b:c"``."""
    return ":".join(str(v) for v in value)


def _norm_communities(values: Iterable[int]) -> tuple[int, ...]:
    out = tuple(sorted(set(values)))
    for v in out:
        if not 0 <= v <= _U32:
            raise ValueError(f"community {v} out of range")
    return out


def _norm_large(values: Iterable[LargeCommunity]) -> tuple[LargeCommunity, ...]:
    out = tuple(sorted(set(values)))
    for v in out:
        if len(v) != 3 or not all(0 <= x <= _U32 for x in v):
            raise ValueError(f"large community {v} out of range")
    return out


@dataclass(frozen=True)
class Attributes:
    """Per-route intent independent of the peer.

    ``local_pref`` is only sent to iBGP peers; ``None`` sends the RFC default of
    100 there (iBGP UPDATEs must carry LOCAL_PREF, RFC 4271 5.1.5).
    ``link_bandwidth`` (bytes per second) goes out as the Link Bandwidth extended
    community, so that a router with weighted ECMP splits traffic by it; None: none.
    """

    local_pref: int | None = None
    communities: tuple[int, ...] = field(default=())
    large_communities: tuple[LargeCommunity, ...] = field(default=())
    link_bandwidth: int | None = None

    def __post_init__(self) -> None:
        if self.local_pref is not None and not 0 <= self.local_pref <= _U32:
            raise ValueError(f"local preference {self.local_pref} out of range")
        if self.link_bandwidth is not None and not 0 <= self.link_bandwidth <= MAX_LINK_BANDWIDTH:
            raise ValueError(f"link bandwidth {self.link_bandwidth} out of range")
        object.__setattr__(self, "communities", _norm_communities(self.communities))
        object.__setattr__(self, "large_communities", _norm_large(self.large_communities))

    @classmethod
    def parse(
        cls,
        *,
        local_pref: int | None = None,
        communities: Iterable[str] = (),
        large_communities: Iterable[str] = (),
    ) -> Attributes:
        """Build from the text forms used in BGPAdvertisement/Community CRs."""
        legacy: list[int] = []
        large: list[LargeCommunity] = []
        for c in communities:
            if c.strip().lower().startswith("large:") or c.count(":") == 2:
                large.append(parse_large_community(c))
            else:
                legacy.append(parse_community(c))
        large.extend(parse_large_community(c) for c in large_communities)
        return cls(local_pref, tuple(legacy), tuple(large))

    def merge(self, other: Attributes) -> Attributes:
        """Union of communities (MetalLB native merges identical prefixes this way).

        The highest local preference wins, an arbitrary but deterministic choice. Link bandwidths add up: a
        prefix shared by several services (an aggregate, a shared IP) weighs what they weigh together.
        """
        prefs = [p for p in (self.local_pref, other.local_pref) if p is not None]
        bandwidths = [b for b in (self.link_bandwidth, other.link_bandwidth) if b is not None]
        return Attributes(
            max(prefs) if prefs else None,
            self.communities + other.communities,
            self.large_communities + other.large_communities,
            min(sum(bandwidths), MAX_LINK_BANDWIDTH_INT) if bandwidths else None,
        )
