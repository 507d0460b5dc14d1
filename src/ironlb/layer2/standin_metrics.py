"""Restart-hold metrics (docs/membership.md "Restart holds"): what this node does while other members restart.

The holds and the stand-ins run in the fast process, which keeps these counts in a store registered nowhere (as
its Layer 2 and BFD counts) and sends :meth:`StandInMetrics.snapshot` to the main process with its other counts
every second; there :meth:`StandInMetrics.load` replaces the values of the store the main process exports. The
``node`` label is the held (restarting) member's name, so the series are bounded by the member list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ironlb.metrics.export import DEFAULT_REGISTRY, DefaultRegistry
from ironlb.metrics.series import LabelledSeries

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["HOLDS_BEGUN", "HOLDS_ENDED", "STANDIN_ANSWERS", "STANDIN_IPS", "StandInMetrics"]

STANDIN_IPS = "ironlb_layer2_standin_ips"
STANDIN_ANSWERS = "ironlb_layer2_standin_answers_total"
HOLDS_BEGUN = "ironlb_membership_holds_begun_total"
HOLDS_ENDED = "ironlb_membership_holds_ended_total"

_HELP = {
    STANDIN_IPS: "IPs this speaker stands in for (answers ARP/NDP with the restarting member's MAC), by restarting "
                 "member.",
    STANDIN_ANSWERS: "ARP replies and NDP advertisements sent as a stand-in (with the restarting member's MAC), by "
                     "restarting member.",
    HOLDS_BEGUN: "Restart holds accepted from a member (its IPs kept in place while its speaker restarts).",
    HOLDS_ENDED: "Restart holds ended, by reason: returned, expired, unreachable, left, removed, standin_down.",
}  # fmt: skip
_TYPES = {STANDIN_IPS: "gauge", STANDIN_ANSWERS: "counter", HOLDS_BEGUN: "counter", HOLDS_ENDED: "counter"}


class StandInMetrics(LabelledSeries):
    """The counts of holds and stand-ins, label ``node`` (``reason`` for the holds ended). Pass a
    ``CollectorRegistry`` (tests use their own); ``None``: keep the counts without exporting them (the fast
    process)."""

    def __init__(self, registry: CollectorRegistry | DefaultRegistry | None = DEFAULT_REGISTRY) -> None:
        super().__init__(_HELP, "node", registry, types=_TYPES, labels={HOLDS_ENDED: "reason"})

    # ------------------------------------------------------------------ counting (the fast process)
    def answered(self, node: str) -> None:
        """An ARP reply / NDP advertisement went out with held member ``node``'s MAC."""
        self._add(STANDIN_ANSWERS, node)

    def hold_begun(self, node: str) -> None:
        self._add(HOLDS_BEGUN, node)

    def hold_ended(self, reason: str) -> None:
        self._add(HOLDS_ENDED, reason)

    def standing_in(self, ips: Mapping[str, int]) -> None:
        """The IPs stood in for now, per held member (the members not named: none)."""
        with self._lock:
            self._series[STANDIN_IPS] = {str(k): float(v) for k, v in ips.items()}

    def value(self, name: str, label: str) -> float:
        """One series' value (0 when absent); for tests and debugging."""
        with self._lock:
            return self._series[name].get(label, 0.0)
