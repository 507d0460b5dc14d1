"""The speaker's ``metallb_k8s_client_*`` metrics and ironlb's membership metrics (the announced, layer2 and BGP
ones register themselves).

The membership families are read at scrape time from the service's immutable view, and from its rejection
counters, which the fast-path thread writes: they are copied (retried if that thread changed them meanwhile), never
locked, so a scrape cannot stall the heartbeats. Without a membership (memberlist off) the families are absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ironlb.fastproc.parent import RemoteMembership
from ironlb.membership import MembershipService
from ironlb.metrics.client import ClientCollector, ClientCounters


class SpeakerCollector(ClientCollector):
    """The client families, plus the membership's (``membership`` returns the running service or None)."""

    def __init__(self, counters: ClientCounters, requests: Callable[[], Mapping[str, int]] | None = None,
                 membership: Callable[[], MembershipService | RemoteMembership | None] | None = None) -> None:
        super().__init__(counters, requests)
        self._membership = membership

    def collect(self) -> Iterator[Metric]:
        yield from super().collect()
        service = self._membership() if self._membership is not None else None
        if service is not None:
            yield from membership_families(service)


def _rejections(service: MembershipService | RemoteMembership) -> dict[str, int]:
    for _ in range(10):
        try:
            return dict(service.rejections())
        except RuntimeError:  # changed size during the copy: the fast path counted one more
            continue
    return {}


def membership_families(service: MembershipService | RemoteMembership) -> list[Metric]:
    """``ironlb_membership_*``: members known, alive, quorum, datagrams dropped by reason, local stalls."""
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
    stalls.add_metric([], service.stalls if isinstance(service, RemoteMembership) else service.membership.stalls)
    return [members, alive, quorum, rejected, stalls]


__all__ = ["SpeakerCollector", "membership_families"]
