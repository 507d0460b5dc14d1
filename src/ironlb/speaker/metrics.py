"""The speaker's ``metallb_k8s_client_*`` metrics, ironlb's membership metrics and the fast process's (the
announced, layer2 and BGP ones register themselves). The membership and fast-path families are
:mod:`ironlb.metrics.membership`'s, shared with ``ironlb run``; without a membership (memberlist off) they are
absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from ironlb.fastproc.parent import FastProcess, RemoteMembership
from ironlb.metrics.client import ClientCollector, ClientCounters
from ironlb.metrics.membership import FastPathCollector, membership_families

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ironlb.membership.service import MembershipService


class SpeakerCollector(ClientCollector):
    """The client families, plus the membership's (``membership`` returns the running service or None) and the
    fast process's (``fastproc`` returns it, or None on the thread)."""

    def __init__(
        self,
        counters: ClientCounters,
        requests: Callable[[], Mapping[str, int]] | None = None,
        membership: Callable[[], MembershipService | RemoteMembership | None] | None = None,
        fastproc: Callable[[], FastProcess | None] | None = None,
    ) -> None:
        super().__init__(counters, requests)
        self._fast = FastPathCollector(membership or (lambda: None), fastproc or (lambda: None))

    def collect(self) -> Iterator[Metric]:
        yield from super().collect()
        yield from self._fast.collect()


__all__ = ["SpeakerCollector", "membership_families"]
