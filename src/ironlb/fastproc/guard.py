"""What the fast process answers ARP/NDP for, given what the heavy side decided and what membership says now.

The heavy side decides (``decide``: election, planning); the fast side only applies its last decision. But the
heavy side can be slow, stopped (SIGSTOP, a wedged loop) or dead, and a decision goes stale when membership
changes under it. These rules keep the promise "never two nodes answering for one IP" without the fast side
deciding anything itself; each only ever answers for *less* than the last decision:

- **Quorum lost**: nothing is answered (the decision would say the same), and every decision computed from a
  membership view older than the moment quorum came back is void: only a decision made with the new view is
  applied. So a node that was cut off never answers again from what it knew before the partition.
- **A member joined** that the decision did not count as alive: the joiner may win some of the IPs. The decision
  is kept for ``join_grace`` seconds (a healthy heavy side sends a new one within milliseconds), then nothing is
  answered until a decision that counts the joiner arrives. Members that died do not make a decision stale: the
  election is per IP and deterministic, so what this node won it still wins among fewer members.
- **Heavy side silent** for ``wedge_timeout`` seconds (it sends a keepalive every second): it is wedged. Nothing
  is answered and the node leaves the membership (the others take its IPs over at once); when it speaks again the
  node rejoins with a new incarnation and answers what it decides next, never the old decision.
- **Heavy side gone** (the channel closed): the child withdraws, leaves and exits; that is the child's shell.

Sans-I/O: the caller passes the time in and applies :meth:`Guard.answering`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Guard", "GuardConfig", "Layer2"]

Layer2 = Mapping[str, tuple[str, ...]]  # ip -> interfaces (() = all)


@dataclass(frozen=True)
class GuardConfig:
    wedge_timeout: float = 30.0
    """Seconds without a word from the heavy side after which the node withdraws and leaves the membership. Long,
    because a false wedge moves every IP of the node: at 10 s, speakers with 10,000 Services on a loaded 2-core VM
    went silent that long seven times in 20 minutes (bench/service_latency.py), while a real wedge is rare."""
    join_grace: float = 2.0
    """Seconds a decision is still answered after a member it did not count as alive joined."""

    def __post_init__(self) -> None:
        if not self.wedge_timeout > 0 or not self.join_grace >= 0:
            raise ValueError("wedge_timeout must be positive and join_grace not negative")


class Guard:
    """The fast side's state: the last decision, the current membership view, the last word from the heavy side.

    Without membership (a single node), only the wedge rule applies.
    """

    def __init__(self, config: GuardConfig, now: float, *, membership: bool) -> None:
        self.config = config
        self.membership = membership
        self._heard = now
        self._layer2: dict[str, tuple[str, ...]] = {}
        self._decision_alive: frozenset[str] = frozenset()
        self._decision_seq = 0
        self._alive: frozenset[str] = frozenset()
        self._quorum = not membership
        self._view_seq = 0
        self._epoch = 0  # decisions made from a view older than this are void
        self._stale_since: float | None = None
        self._wedged = False

    # ------------------------------------------------------------------ inputs
    def heard(self, now: float) -> bool:
        """The heavy side spoke. True if it had been declared wedged (the caller rejoins the membership)."""
        self._heard = now
        if not self._wedged:
            return False
        self._wedged = False
        return True

    def decided(self, layer2: Layer2, view_seq: int, alive: frozenset[str], now: float) -> None:
        """A decision made from the view numbered ``view_seq`` (what :meth:`view` was given), alive set ``alive``."""
        self.heard(now)
        self._layer2 = {ip: tuple(ifs) for ip, ifs in layer2.items()}
        self._decision_seq = view_seq
        self._decision_alive = alive
        self._update_stale(now)

    def view(self, seq: int, alive: frozenset[str], quorum: bool, now: float) -> None:
        """Membership changed; ``seq`` numbers the views (increasing), the heavy side tags decisions with it."""
        if quorum and not self._quorum:
            self._epoch = seq
        self._view_seq, self._alive, self._quorum = seq, alive, quorum
        self._update_stale(now)

    def membership_started(self) -> None:
        """Membership runs from now on: nothing is answered before its first view with quorum."""
        self.membership = True
        self._quorum = False

    def rejoined(self, seq: int) -> None:
        """Membership restarted after a wedge: every earlier decision is void."""
        self._epoch = seq
        self._layer2 = {}

    def wedged(self, now: float) -> bool:
        """Whether the heavy side is silent for too long; True once per wedge (the caller leaves the membership)."""
        if self._wedged or now - self._heard < self.config.wedge_timeout:
            return False
        self._wedged = True
        self._layer2 = {}
        return True

    # ------------------------------------------------------------------ output
    @property
    def is_wedged(self) -> bool:
        return self._wedged

    @property
    def decision(self) -> dict[str, tuple[str, ...]]:
        """The heavy side's last decision, as given (void ones included)."""
        return dict(self._layer2)

    def answering(self, now: float) -> dict[str, tuple[str, ...]]:
        """The IPs (and interfaces) to answer for now."""
        if self._wedged or now - self._heard >= self.config.wedge_timeout:
            return {}
        if not self.membership:
            return dict(self._layer2)
        if not self._quorum or self._decision_seq < self._epoch:
            return {}
        if self._stale_since is not None and now - self._stale_since >= self.config.join_grace:
            return {}
        return dict(self._layer2)

    def next_deadline(self, now: float) -> float:
        """When :meth:`answering` or :meth:`wedged` may change with no input."""
        deadline = self._heard + self.config.wedge_timeout
        if self._stale_since is not None:
            deadline = min(deadline, self._stale_since + self.config.join_grace)
        return max(deadline, now)

    def _update_stale(self, now: float) -> None:
        if self.membership and self._alive - self._decision_alive:
            if self._stale_since is None:
                self._stale_since = now
        else:
            self._stale_since = None
