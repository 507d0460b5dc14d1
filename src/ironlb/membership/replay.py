"""Freshness and anti-replay: which authentic datagrams may change what this node believes.

Authentication and replay (why each field exists)
    * HMAC-SHA256 with a shared secret over the whole datagram (``wire``):
      forged or corrupted packets are dropped before parsing.
    * Sender and destination names are in the MAC: a packet for one member can
      not be replayed to another, and identity never comes from the source
      address (which is ignored; replies go to the configured address only, so
      nobody can use us as a reflector).
    * Incarnation: a random 64-bit id per process start. Sequence numbers are
      strictly increasing within an incarnation; anything not newer than the
      last accepted packet is a replay. Incarnations we have moved away from
      are retired and never accepted again.
    * Freshness without clocks: each heartbeat echoes the receiver's
      incarnation and the highest sequence number the sender has seen from it.
      The receiver accepts a packet as proof of life only if the echo names its
      *current* incarnation and a sequence number it sent within the last
      ``dead_timeout``. This is a nonce exchange: a captured packet is useless
      once that window has passed, and after the receiver restarts (new
      incarnation, state lost) every old capture is useless at once, with no
      dependence on synchronised wall clocks. A restarted *sender* is accepted
      as soon as its packet echoes us correctly (one round trip). An on-path
      attacker holding back a genuine packet can use it only within that
      window, so a dead node stays alive at most ~``2 * dead_timeout``.
    * Authentic packets without a fresh echo may only teach us which
      (incarnation, seq) to echo back, under rules that a replay cannot use to
      go backwards while the member is alive; they never change membership.
    * NOTICEs cannot carry a fresh echo (the sender has usually never talked to
      the receiver). They are protected by sequence numbers per sender
      incarnation and, beyond that, by the entry order of ``table``: replaying
      one can only repeat facts that newer entries already beat.

    A side effect worth knowing: liveness is bidirectional. If packets get
    through in one direction only, neither side can prove freshness and both
    see each other as dead, so the two views stay symmetric.
"""

from __future__ import annotations

from collections import deque

__all__ = ["NoticeWindows", "SentLog", "notice_record", "notice_replayed"]

NOTICE_INCS_KEEP = 4
NOTICE_WINDOW = 4096
_WINDOW_MASK = (1 << NOTICE_WINDOW) - 1

NoticeWindows = dict[int, tuple[int, int]]
"""Per sender incarnation: the highest NOTICE seq seen and a bitmask of the ``NOTICE_WINDOW`` below it."""


def notice_replayed(windows: NoticeWindows, inc: int, seq: int) -> bool:
    """Whether NOTICE ``seq`` of incarnation ``inc`` was seen or is too old (UDP may reorder, as IPsec allows)."""
    top, mask = windows.get(inc, (0, 0))
    back = top - seq
    return back >= NOTICE_WINDOW or (back >= 0 and (top == seq or bool(mask >> back & 1)))


def notice_record(windows: NoticeWindows, inc: int, seq: int) -> None:
    """Remember NOTICE ``seq`` of ``inc`` as seen, forgetting the oldest incarnation beyond ``NOTICE_INCS_KEEP``."""
    top, mask = windows.get(inc, (0, 0))
    back = top - seq
    if inc not in windows and len(windows) >= NOTICE_INCS_KEEP:
        del windows[next(iter(windows))]
    if back < 0:
        mask = ((mask << -back) | 1) & _WINDOW_MASK if -back < NOTICE_WINDOW else 1
        top = seq
    else:
        mask |= 1 << back
    windows[inc] = (top, mask)


class SentLog:
    """(first seq of a burst, time sent) of this incarnation's recent bursts: proves an echoed seq is fresh."""

    __slots__ = ("_bursts",)

    def __init__(self) -> None:
        self._bursts: deque[tuple[int, float]] = deque()

    def __len__(self) -> int:
        return len(self._bursts)

    def record(self, first: int, now: float, horizon: float) -> None:
        """A burst starting at ``first`` went out at ``now``; forget bursts before ``horizon`` (bounded memory)."""
        self._bursts.append((first, now))
        self.prune(horizon)

    def prune(self, horizon: float) -> None:
        bursts = self._bursts
        while bursts and bursts[0][1] < horizon:
            bursts.popleft()

    def covers(self, seq: int, last: int, horizon: float) -> bool:
        """Was ``seq`` sent at or after ``horizon`` (``last`` is the newest seq sent)?"""
        self.prune(horizon)
        if not self._bursts:
            return False
        return self._bursts[0][0] <= seq <= last
