"""ironlb's membership and fast-path metrics, for ``ironlb speaker`` and ``ironlb run`` alike.

Read at scrape time from what the running process has: the membership service's immutable view and its counters
(a membership on the fast-path thread of this process), or what the fast process last reported over its channel
(:class:`ironlb.fastproc.parent.RemoteMembership`, :class:`ironlb.fastproc.parent.FastProcess`). Counters the
fast-path thread writes are copied (retried if that thread changed them meanwhile), never locked, so a scrape
cannot stall the heartbeats. Without a membership (memberlist off, a node alone) its families are absent; without
a fast process, the loop-lag family is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ironlb.fastproc.parent import FastProcess, RemoteMembership
from ironlb.histogram import Histogram

if TYPE_CHECKING:
    from prometheus_client.metrics_core import HistogramMetricFamily, Metric

    from ironlb.membership.service import MembershipService

    AnyMembership = MembershipService | RemoteMembership

__all__ = ["FastPathCollector", "fastpath_families", "membership_families"]


class FastPathCollector:
    """The membership's families and the fast process's; ``membership`` and ``fastproc`` return the running ones
    (or None)."""

    def __init__(
        self,
        membership: Callable[[], AnyMembership | None],
        fastproc: Callable[[], FastProcess | None] = lambda: None,
    ) -> None:
        self._membership = membership
        self._fastproc = fastproc

    def describe(self) -> Iterator[Metric]:
        return iter(())  # unchecked: the families come and go with the membership

    def collect(self) -> Iterator[Metric]:
        service = self._membership()
        if service is not None:
            yield from membership_families(service)
        process = self._fastproc()
        if process is not None:
            yield from fastpath_families(process)


def _rejections(service: AnyMembership) -> dict[str, int]:
    for _ in range(10):
        try:
            return dict(service.rejections())
        except RuntimeError:  # changed size during the copy: the fast path counted one more
            continue
    return {}


def _histogram(name: str, doc: str, hist: Histogram) -> HistogramMetricFamily:
    from prometheus_client.metrics_core import HistogramMetricFamily

    return HistogramMetricFamily(name, doc, buckets=hist.cumulative(), sum_value=hist.sum)


def membership_families(service: AnyMembership) -> list[Metric]:
    """``ironlb_membership_*``: members known, alive, quorum, datagrams dropped by reason, local stalls, detection
    times."""
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

    view = service.view
    members = GaugeMetricFamily("ironlb_membership_members", "Speakers in this speaker's member list (itself too).")
    members.add_metric([], len(view.members) + 1)  # the view lists the peers only
    alive = GaugeMetricFamily("ironlb_membership_alive_members",
                              "Speakers this speaker sees alive (itself too).")
    alive.add_metric([], len(view.alive))
    quorum = GaugeMetricFamily("ironlb_membership_quorum_bool",
                               "1 while this speaker sees a majority of the member list alive.")
    quorum.add_metric([], 1.0 if view.has_quorum else 0.0)
    rejected = CounterMetricFamily("ironlb_membership_rejected_datagrams_total",
                                   "Membership datagrams dropped, by reason.", labels=["reason"])
    for reason, n in sorted(_rejections(service).items()):
        rejected.add_metric([reason], n)
    stalls = CounterMetricFamily("ironlb_membership_stalls_total",
                                 "Late membership ticks treated as a local stall (alive members kept one more "
                                 "dead timeout instead of being declared dead).")
    if isinstance(service, RemoteMembership):
        stall_count, detections = service.stalls, service.detections
    else:
        stall_count, detections = service.membership.stalls, service.membership.detections.copy()
    stalls.add_metric([], stall_count)
    detection = _histogram(
        "ironlb_membership_detection_seconds",
        "Seconds from the last heartbeat heard from a member to this speaker declaring it dead (silent for the "
        "dead timeout), one observation per member failure it detected.",
        detections,
    )
    return [members, alive, quorum, rejected, stalls, detection]


def fastpath_families(process: FastProcess) -> list[Metric]:
    """``ironlb_fastpath_loop_lag_seconds``: how late the fast process's event loop runs its timers."""
    return [_histogram(
        "ironlb_fastpath_loop_lag_seconds",
        "Seconds the fast process's event loop ran a 100 ms timer late: the wait an ARP/NDP request or a membership "
        "heartbeat meets there before it is handled.",
        process.loop_lag,
    )]  # fmt: skip
