"""The member table: what this node believes about every member, and how entries are ordered.

Everyone else (large clusters)
    Each node keeps a *table*: for every member its incarnation, a generation
    number and whether it was declared dead (or left). A watcher that sees a
    neighbour die marks its entry dead and sends a signed NOTICE with that entry
    to every member at once. Entries are ordered (same incarnation: higher
    generation wins, and at equal generation dead beats alive), so notices are
    idempotent and a replayed one carries information that is already beaten. A
    starting node announces its own entry to everyone; a node that receives an
    entry declaring *itself* dead at its current generation refutes it by
    raising its generation and announcing that. Heartbeats carry the sender's
    generation and a hash of the sender's table; neighbours whose hashes stay
    different for ``dead_timeout`` send each other their table (at most once
    per ``sync_interval``), so a lost notice is repaired.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = ["DEAD", "ENTRY", "LEFT", "Entry", "Table", "chunks", "name_key"]

RETIRED_KEEP = 8
"""Incarnations of one member remembered as retired (never accepted again)."""
# One table entry on the wire: name key, incarnation, generation, flags.
ENTRY = struct.Struct("!8sQIB")
DEAD = 1
LEFT = 2
# Entries per NOTICE datagram: about 1.4 kB, so a table sync is not IP-fragmented.
ENTRIES_PER_DATAGRAM = 64
U32_MAX = (1 << 32) - 1


def name_key(name: str) -> bytes:
    """The 8-byte key that stands for a member name in table entries."""
    return hashlib.blake2b(name.encode(), digest_size=8, person=b"ironlb-member").digest()


def _entry_hash(packed: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "big")


@dataclass(slots=True, eq=False)
class Entry:
    """What this node believes about one member; ``packed`` is its wire form, ``hash`` its share of the table hash."""

    key: bytes
    inc: int = 0
    gen: int = 0
    flags: int = 0
    retired: deque[int] = field(default_factory=lambda: deque(maxlen=RETIRED_KEEP))
    hash: int = 0
    packed: bytes = b""

    def __post_init__(self) -> None:
        self.packed = ENTRY.pack(self.key, 0, 0, 0)


class Table:
    """The entries by member name, by key, and the XOR of their hashes (kept up to date by ``set``)."""

    __slots__ = ("by_key", "entries", "hash")

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.by_key: dict[bytes, str] = {}
        self.hash = 0

    def rebuild(self, order: Sequence[str]) -> None:
        """Keep the entries of the members in ``order``, add fresh ones for new members."""
        entries: dict[str, Entry] = {}
        for name in order:
            entry = self.entries.get(name)
            entries[name] = entry if entry is not None else Entry(name_key(name))
        self.entries = entries
        self.by_key = {e.key: n for n, e in entries.items()}
        self.hash = 0
        for e in entries.values():
            self.hash ^= e.hash

    def set(self, entry: Entry, inc: int, gen: int, flags: int) -> None:
        """Overwrite ``entry`` (no ordering check) and keep the table hash right."""
        self.hash ^= entry.hash
        entry.inc, entry.gen, entry.flags = inc, gen, flags
        entry.packed = ENTRY.pack(entry.key, inc, gen, flags)
        entry.hash = _entry_hash(entry.packed) if inc else 0
        self.hash ^= entry.hash

    def merge(self, entry: Entry, inc: int, gen: int, flags: int) -> bool:
        """Fold what a peer says of another member into ``entry`` if it beats it; True if it changed."""
        if inc in entry.retired or inc == 0:
            return False
        if entry.inc == inc:
            if (gen, flags & DEAD) <= (entry.gen, entry.flags & DEAD):
                return False
        elif entry.inc:
            entry.retired.append(entry.inc)
        self.set(entry, inc, gen, flags)
        return True

    def declared_dead(self) -> frozenset[str]:
        return frozenset(n for n, e in self.entries.items() if e.flags & DEAD)

    def known(self) -> list[bytes]:
        """The packed entries of every member heard of (a full table sync)."""
        return [e.packed for e in self.entries.values() if e.inc]


def chunks(entries: Sequence[bytes]) -> Iterator[bytes]:
    """NOTICE payloads of at most ``ENTRIES_PER_DATAGRAM`` entries each."""
    for i in range(0, len(entries), ENTRIES_PER_DATAGRAM):
        yield b"".join(entries[i : i + ENTRIES_PER_DATAGRAM])
