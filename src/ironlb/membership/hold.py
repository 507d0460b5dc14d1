"""The restart hold: a LEAVE that says "restarting, keep my IPs where they are for up to H seconds".

Why: a speaker pod restarting on a node that stays up (a DaemonSet rollout) used to move every IP it announced to
another node and back, and each move resets the TCP connections in flight (the other node's kube-proxy has no
conntrack entry for them). The node's kernel and kube-proxy keep forwarding the IPs' traffic the whole time, so
nothing needs to move: the others keep the restarting node in their alive set (the election keeps it as owner)
and, for each of its IPs, the node that would take it over *stands in*: it answers ARP requests / neighbour
solicitations with the restarting node's MAC and sends no gratuitous ARP, so clients go on sending to that node.

A hold LEAVE is an ordinary LEAVE (same header, HMAC, sequence numbers and freshness; its first 21 bytes are the
sender's DEAD|LEFT table entry, so a receiver that does not know holds treats it as the plain LEAVE it was) with
this extension after the entry (big-endian)::

    1   kind (1 = hold)
    4   hold in milliseconds, 1..MAX_HOLD_MS
    1   l = number of links, 0..MAX_LINKS
    l x (6 MAC, 1 family (4 or 6), 4 or 16 address): the sender's own MAC and address (its primary IPv4
        address, else its IPv6 link-local one) on each interface it answers ARP/NDP on. The address is what a
        stand-in probes (ARP / NDP to that MAC): the held node's kernel answers it while the node is up, so a
        node that dies during the hold is noticed in about ``dead_timeout``, and the answer comes in on the
        stand-in's interface that shares the segment, the only one on which that MAC means anything.
    2   n4, then n4 x 4: IPv4 addresses this receiver stands in for
    2   n6, then n6 x 16: IPv6 addresses likewise
    [2  s, then s x 8: the name keys (``table.name_key``) of every member given IPs, the stand-ins; optional]
    [4  the number of IPs this receiver stands in for over all the datagrams of its share; only when the share
        takes several (then the stand-in names section is there, maybe empty)]

The stand-in names go to every member (not only to the stand-ins), so that each one ends the hold at once when a
stand-in goes down, leaves, restarts or is held itself: nobody else answers for that stand-in's share or probes
the held node, so the held node's IPs must fail over as after a death (``HoldEnded`` reason ``standin_down``).
A hold without the section (an earlier encoder) names no stand-ins and ends only in the other ways.

The stand-in IPs are per receiver (each LEAVE names its destination), chosen by the restarting node from its own
last decision: for each IP it announced, the next candidate of the election among the live members, which is the
node that would take the IP if it left. More IPs (and stand-in names) than fit in one datagram go in several hold
LEAVEs of the same incarnation; the receiver adds them up (bounded by ``MAX_HELD_IPS`` and ``MAX_STANDINS``). Each
datagram of a share in several says how many IPs the whole share has, so the receiver knows while it is incomplete
(``HeldMember.complete``): a member that starts during the hold does not take the IPs of the datagrams still to come
for Services new since the hold began (``ironlb.decide.holding``'s ``pending``). A share in one datagram (up to about
1,000 IPv4 or 250 IPv6 addresses) has no count and is as before; a build before the count drops a datagram that has
one (``bad_hold``) and times the node out, as after a crash.

A member that starts after the hold LEAVE was sent (or whose previous incarnation got it: that one is gone) learns
the holds in force from its peers instead: a settled member that holds members sends a neighbour that has just said
hello, or whose heartbeats say it is settling (or cannot say: member lists that differ, within the settle bound), a
HOLDS message (``wire``), at once and again every two heartbeat intervals while that lasts. Its
payload (big-endian)::

    1   version (1)
    1   r = number of records, 0..MAX_RELAYED_HOLDS
    r x (1 n, n the held member's name (UTF-8), 1 family (4 or 6), 4 or 16 its member address, 2 its member port,
         8 its incarnation that asked for the hold, 2 length, then that many bytes: a hold extension as above, with
         what remains of the hold at the sender, the held member's links, the IPs the *sender* stands in for (a
         joiner stands in for nothing: the stand-ins the held member named go on), its stand-in names and the size
         of the sender's share)

Once every stand-in the held member named has relayed its whole share, the joiner knows the held member's IPs that
have a stand-in (``HeldMember.kept``): what the others keep it on, so a Service created during the hold goes to the
next node on the joiner too (without them, the joiner keeps every Service the held member wins with it).

It is signed and proven fresh as a heartbeat is (the sender echoes the joiner's recent sequence number, ``replay``),
and accepted only while the joiner settles, about a member other than its sender and not alive
here in another incarnation: the joiner then holds that member as the others do (alive for the election, not for
the quorum) until it returns, its time runs out, or a stand-in goes, so it does not take the held member's IPs as
a crashed member's. A held member the joiner's member list lacks (a Kubernetes speaker lists the speaker Pods, and
the held member's is being replaced) is remembered with its address (``Membership.unlisted_holds``, at most
``MAX_UNLISTED_HOLDS``) and keeps the joiner settling: its caller adds it to the member list, and the next HOLDS
is taken. A release that does not know HOLDS drops it (an unknown message type) and settles as before.

``decode_hold`` and ``decode_relay`` raise only ``HoldError``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import NamedTuple

__all__ = [
    "HOLD_KIND",
    "MAX_HELD_IPS",
    "MAX_HOLD_MS",
    "MAX_LINKS",
    "MAX_RELAYED_HOLDS",
    "MAX_STANDINS",
    "MAX_UNLISTED_HOLDS",
    "RELAY_VERSION",
    "HeldLink",
    "HeldMember",
    "HoldError",
    "HoldOffer",
    "HoldPayload",
    "IPAddress",
    "RelayRecord",
    "decode_hold",
    "decode_relay",
    "encode_hold",
    "encode_relay",
    "hold_chunks",
    "relay_payloads",
]

HOLD_KIND = 1
MAX_HOLD_MS = 60_000
"""A hold is bounded on the wire at one minute; each receiver bounds it further (``MembershipConfig.hold_max``)."""
MAX_LINKS = 16
MAX_HELD_IPS = 65_536
"""Stand-in IPs kept per held member at most; further ones are counted (``rejected["hold_oversized"]``) and dropped."""
MAX_STANDINS = 4096
"""Stand-in names kept per held member at most (a member list is far smaller); further ones are dropped."""
IPS_PER_DATAGRAM = 4096
"""Bytes of addresses and stand-in keys per hold LEAVE: with the header, the names and 16 links it stays under
``MAX_DATAGRAM``."""
KEY_SIZE = 8
RELAY_VERSION = 1
MAX_RELAYED_HOLDS = 16
"""Records per HOLDS datagram at most (a held member with many stand-ins takes several records)."""
RELAY_BYTES = 6000
"""Bytes of records per HOLDS datagram at most: with the header and the names it stays under ``MAX_DATAGRAM``."""
KEYS_PER_RECORD = 512
MAX_NAME = 253
MAX_UNLISTED_HOLDS = 16
"""Held members a joiner's member list lacks that it remembers from relays (names and addresses) at most."""

_HEAD = struct.Struct("!BIB")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U32_MAX = (1 << 32) - 1
_MAC = 6
_RELAY_HEAD = struct.Struct("!BB")
_RELAY_RECORD = struct.Struct("!HQH")  # port, incarnation, extension length

IPAddress = IPv4Address | IPv6Address


class HoldError(ValueError):
    """A hold extension that is not well formed (``reason`` is a metric label)."""

    def __init__(self, detail: str, reason: str = "bad_hold") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class HeldLink:
    """The held node's MAC on one of its interfaces, and its own address there (the probe target)."""

    mac: bytes
    address: IPAddress

    def __post_init__(self) -> None:
        if len(self.mac) != _MAC:
            raise ValueError(f"a MAC is {_MAC} bytes, got {len(self.mac)}")


@dataclass(frozen=True, slots=True)
class HoldPayload:
    """A decoded hold extension."""

    seconds: float
    links: tuple[HeldLink, ...]
    ips: tuple[IPAddress, ...]
    standins: tuple[bytes, ...] = ()
    """Name keys of the stand-ins (``table.name_key``); empty when the sender named none."""
    share: int | None = None
    """The IPs of this receiver's whole share, when it takes several datagrams (None: this one has it all)."""


def encode_hold(
    seconds: float,
    links: Sequence[HeldLink],
    ips: Sequence[IPAddress],
    standins: Sequence[bytes] = (),
    share: int | None = None,
) -> bytes:
    """The extension for one datagram (``standins``: name keys; ``share``: the whole share's size when it takes
    several datagrams); raises ``ValueError`` on out-of-range values."""
    ms = round(seconds * 1000)
    if not 1 <= ms <= MAX_HOLD_MS:
        raise ValueError(f"hold must be 0.001..{MAX_HOLD_MS / 1000:g} s, got {seconds}")
    if len(links) > MAX_LINKS:
        raise ValueError(f"at most {MAX_LINKS} links, got {len(links)}")
    v4 = [ip.packed for ip in ips if isinstance(ip, IPv4Address)]
    v6 = [ip.packed for ip in ips if isinstance(ip, IPv6Address)]
    if any(len(key) != KEY_SIZE for key in standins):
        raise ValueError(f"a stand-in name key is {KEY_SIZE} bytes")
    if 4 * len(v4) + 16 * len(v6) + KEY_SIZE * len(standins) > IPS_PER_DATAGRAM:
        raise ValueError("too many addresses for one datagram: use hold_chunks")
    parts = [_HEAD.pack(HOLD_KIND, ms, len(links))]
    for link in links:
        parts += [link.mac, bytes((link.address.version,)), link.address.packed]
    parts += [_U16.pack(len(v4)), *v4, _U16.pack(len(v6)), *v6]
    if standins or share is not None:
        parts += [_U16.pack(len(standins)), *standins]
    if share is not None:
        if not 0 <= share <= _U32_MAX:
            raise ValueError(f"a share of {share} IPs")
        parts.append(_U32.pack(share))
    return b"".join(parts)


def hold_chunks(
    ips: Sequence[IPAddress], standins: Sequence[bytes] = ()
) -> Iterator[tuple[list[IPAddress], list[bytes]]]:
    """``ips`` and the stand-in keys cut into parts that each fit one datagram (at least one part, maybe empty);
    the keys come first, so a receiver's first datagram names every stand-in when they fit."""
    chunk: list[IPAddress] = []
    keys: list[bytes] = []
    size = 0
    items: list[bytes | IPAddress] = [*standins, *ips]
    for item in items:
        width = KEY_SIZE if isinstance(item, bytes) else 4 if isinstance(item, IPv4Address) else 16
        if size + width > IPS_PER_DATAGRAM:
            yield chunk, keys
            chunk, keys, size = [], [], 0
        if isinstance(item, bytes):
            keys.append(item)
        else:
            chunk.append(item)
        size += width
    yield chunk, keys


def _counted(data: bytes, off: int, width: int, count_name: str, items_name: str) -> tuple[list[bytes], int]:
    """A u16 count at ``off``, then that many ``width``-byte items: the items and the offset after them; raises
    ``HoldError`` ("truncated COUNT_NAME" / "truncated ITEMS_NAME") when ``data`` ends before either."""
    if off + _U16.size > len(data):
        raise HoldError(f"truncated {count_name}")
    (count,) = _U16.unpack_from(data, off)
    off += _U16.size
    end = off + count * width
    if end > len(data):
        raise HoldError(f"truncated {items_name}")
    return [bytes(data[at : at + width]) for at in range(off, end, width)], end


def decode_hold(data: bytes) -> HoldPayload:
    """Parse an extension (authenticated already: this guards against bugs and other releases, not attackers)."""
    if len(data) < _HEAD.size:
        raise HoldError("truncated")
    kind, ms, nlinks = _HEAD.unpack_from(data)
    if kind != HOLD_KIND:
        raise HoldError(f"unknown extension kind {kind}")
    if not 1 <= ms <= MAX_HOLD_MS:
        raise HoldError(f"hold of {ms} ms is out of range", "hold_oversized")
    if nlinks > MAX_LINKS:
        raise HoldError(f"{nlinks} links", "hold_oversized")
    off = _HEAD.size
    links: list[HeldLink] = []
    for _ in range(nlinks):
        if off + _MAC + 1 > len(data):
            raise HoldError("truncated link")
        mac = bytes(data[off : off + _MAC])
        family = data[off + _MAC]
        off += _MAC + 1
        width = {4: 4, 6: 16}.get(family)
        if width is None or off + width > len(data):
            raise HoldError(f"bad link address (family {family})")
        raw = bytes(data[off : off + width])
        off += width
        links.append(HeldLink(mac, IPv4Address(raw) if width == 4 else IPv6Address(raw)))
    ips: list[IPAddress] = []
    for width in (4, 16):
        raws, off = _counted(data, off, width, "address count", "addresses")
        ips.extend(IPv4Address(raw) if width == 4 else IPv6Address(raw) for raw in raws)
    standins: list[bytes] = []
    if off < len(data):  # the optional stand-in names
        standins, off = _counted(data, off, KEY_SIZE, "stand-in count", "stand-in names")
    share: int | None = None
    if off < len(data):  # the optional size of a share in several datagrams
        if off + _U32.size > len(data):
            raise HoldError("truncated share size")
        (share,) = _U32.unpack_from(data, off)
        off += _U32.size
    if off != len(data):
        raise HoldError("trailing bytes")
    return HoldPayload(ms / 1000, tuple(links), tuple(ips), tuple(standins), share)


@dataclass(frozen=True, slots=True)
class HoldOffer:
    """What a restarting node asks of the others (``Membership.leave``): hold for ``seconds``; ``links`` as in
    the extension; ``stand_in``: per member name, the IPs it is to stand in for (members not named get none)."""

    seconds: float
    links: tuple[HeldLink, ...]
    stand_in: Mapping[str, Sequence[IPAddress]]


@dataclass(slots=True, eq=False)
class HeldMember:
    """A member this node holds: the incarnation that asked, until when (core time), its links, our IPs and the
    names of its stand-ins (the hold ends when one goes down); ``share``: how many IPs our share has in all, when it
    came in several datagrams (None: one had it all)."""

    inc: int
    until: float
    links: tuple[HeldLink, ...]
    ips: set[IPAddress]
    standins: set[str] = field(default_factory=set)
    share: int | None = None
    relayed: dict[str, tuple[set[IPAddress], int]] = field(default_factory=dict)
    """Held by a relay (HOLDS): per stand-in that relayed it, the IPs it stands in for so far and how many in all."""

    @property
    def complete(self) -> bool:
        """Has every datagram of our share come? (Until then, ``ips`` lacks some of the IPs we stand in for.)"""
        return self.share is None or len(self.ips) >= self.share

    def kept(self) -> frozenset[IPAddress] | None:
        """The held member's IPs with a stand-in, once every stand-in it named has relayed its whole share to us
        (None before, or for a hold that named none): what the others' decisions keep it on, less the IPs nobody
        could take over anyway."""
        if not self.standins or not self.relayed.keys() >= self.standins:
            return None
        if any(len(ips) < size for ips, size in self.relayed.values()):
            return None
        return frozenset(ip for ips, _ in self.relayed.values() for ip in ips)


class RelayRecord(NamedTuple):
    """One relayed hold: the held member's name, its incarnation, its member address as the sender has it (a joiner
    whose member list lacks it can add it: a Kubernetes speaker's Pod listing does while the member's Pod is being
    replaced) and its hold extension (``encode_hold``)."""

    name: str
    inc: int
    address: tuple[str, int]
    ext: bytes


def encode_relay(records: Sequence[RelayRecord]) -> bytes:
    """A HOLDS payload; raises ``ValueError`` beyond ``MAX_RELAYED_HOLDS`` records or on a bad name or address."""
    if len(records) > MAX_RELAYED_HOLDS:
        raise ValueError(f"at most {MAX_RELAYED_HOLDS} records, got {len(records)}")
    parts = [_RELAY_HEAD.pack(RELAY_VERSION, len(records))]
    for name, inc, (host, port), ext in records:
        raw = name.encode("utf-8")
        if not 1 <= len(raw) <= MAX_NAME:
            raise ValueError(f"a member name is 1..{MAX_NAME} bytes")
        addr = ip_address(host)
        parts += [bytes((len(raw),)), raw, bytes((addr.version,)), addr.packed, _RELAY_RECORD.pack(port, inc, len(ext))]
        parts.append(ext)
    return b"".join(parts)


def decode_relay(data: bytes) -> list[RelayRecord]:
    """The records of a HOLDS payload (each extension still to ``decode_hold``)."""
    if len(data) < _RELAY_HEAD.size:
        raise HoldError("truncated relay")
    version, count = _RELAY_HEAD.unpack_from(data)
    if version != RELAY_VERSION:
        raise HoldError(f"unknown relay version {version}")
    if count > MAX_RELAYED_HOLDS:
        raise HoldError(f"{count} relayed holds", "hold_oversized")
    off = _RELAY_HEAD.size
    out: list[RelayRecord] = []
    for _ in range(count):
        size = data[off] if off < len(data) else 0
        if not 1 <= size <= MAX_NAME or off + 1 + size + 1 > len(data):
            raise HoldError("bad relay record name")
        try:
            name = data[off + 1 : off + 1 + size].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HoldError("relay record name is not UTF-8") from exc
        off += 1 + size
        width = {4: 4, 6: 16}.get(data[off])
        if width is None or off + 1 + width + _RELAY_RECORD.size > len(data):
            raise HoldError("bad relay record address")
        raw = bytes(data[off + 1 : off + 1 + width])
        host = str(IPv4Address(raw) if width == 4 else IPv6Address(raw))
        off += 1 + width
        port, inc, size = _RELAY_RECORD.unpack_from(data, off)
        off += _RELAY_RECORD.size
        if off + size > len(data) or inc == 0 or port == 0:
            raise HoldError("bad relay record")
        out.append(RelayRecord(name, inc, (host, port), bytes(data[off : off + size])))
        off += size
    if off != len(data):
        raise HoldError("trailing bytes in relay")
    return out


def relay_payloads(
    records: Sequence[
        tuple[str, int, tuple[str, int], float, tuple[HeldLink, ...], Sequence[bytes], Sequence[IPAddress] | None]
    ],
) -> list[bytes]:
    """HOLDS payloads for the holds ``records`` (name, incarnation, member address, seconds left, links, stand-in
    keys, the IPs the sender stands in for: None while its own share is incomplete), each within ``RELAY_BYTES``
    and ``MAX_RELAYED_HOLDS``; a member with many stand-ins or IPs takes several records, each saying how many IPs
    the sender's share has in all."""
    out: list[bytes] = []
    batch: list[RelayRecord] = []
    size = 0
    for name, inc, address, seconds, links, standins, share in records:
        seconds = min(max(seconds, 0.001), MAX_HOLD_MS / 1000)
        for ips, keys in hold_chunks(list(share or ()), list(standins)):
            ext = encode_hold(seconds, links, ips, keys, None if share is None else len(share))
            width = 2 * MAX_NAME + _RELAY_RECORD.size + len(ext)  # the name and address at most
            if batch and (size + width > RELAY_BYTES or len(batch) == MAX_RELAYED_HOLDS):
                out.append(encode_relay(batch))
                batch, size = [], 0
            batch.append(RelayRecord(name, inc, address, ext))
            size += width
    if batch:
        out.append(encode_relay(batch))
    return out
