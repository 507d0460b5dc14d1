"""Putting one node's decision on the network: ARP/NDP responders, BGP sessions (with BFD) and
``metallb_speaker_announced``.

``ironlb run`` (state directory) and ``ironlb speaker`` (Kubernetes) differ only in where the decision comes
from; what a node does with it must be identical, so both hand an :class:`ironlb.decide.Announcement` to one
:class:`Announcer`. Applying never waits on anything remote: the responders and the metric change at once, BGP
route changes become UPDATEs on sessions that keep running on their own.

The responders and BFD run on the fast path (:class:`ironlb.fastpath.FastPath`, given by the caller, else one on
the caller's loop); the BGP sessions stay on the caller's (main) loop. Decisions cross over through the fast
path's ``call``; a BFD failure comes back through ``to_main``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Protocol

from ironlb.bgp.speaker import BFDFactory, BGPSpeaker
from ironlb.decide import BGP, LAYER2, Announcement
from ironlb.fastpath import FastPath
from ironlb.layer2.interfaces import ALL, DEFAULT_EXCLUDE_PATTERNS, AllInterfaces
from ironlb.metrics.speaker import SpeakerMetrics, speaker_metrics

if TYPE_CHECKING:
    from ironlb.bfd.service import BFDManager
    from ironlb.bgp.fsm import Event

log = logging.getLogger(__name__)

__all__ = ["BGP", "LAYER2", "Announcement", "Announcer"]


class LayerTwoResponder(Protocol):
    """What the Announcer needs of a responder: :class:`ironlb.layer2.Responder` on a fast loop in this process,
    or :class:`ironlb.fastproc.parent.RemoteResponder` for one in the fast process."""

    @property
    def interface_names(self) -> frozenset[str]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def set_announced(
        self,
        announced: Mapping[IPv4Address | IPv6Address | str, Iterable[str] | AllInterfaces],
        hand_over: Iterable[IPv4Address | IPv6Address | str] = (),
    ) -> None: ...

    def release(self, hand_over: Iterable[IPv4Address | IPv6Address | str], timeout: float | None = None) -> None: ...

    async def released(self) -> None: ...


class Announcer:
    """The node's responders, BGP sessions and announced metric, driven by :meth:`apply`."""

    def __init__(
        self,
        node: str,
        *,
        responder: LayerTwoResponder | None = None,
        bgp: BGPSpeaker | None = None,
        bfd_factory: BFDFactory | None = None,
        exclude_interfaces: tuple[str, ...] = DEFAULT_EXCLUDE_PATTERNS,
        rescan_interval: float = 10.0,
        gratuitous_interval: float = 1.1,
        gratuitous_duration: float = 5.0,
        handover_timeout: float = 2.0,
        on_bgp_event: Callable[[str, Event], None] | None = None,
        metrics: SpeakerMetrics | None = None,
        fastpath: FastPath | None = None,
    ) -> None:
        self.node = node
        self.fastpath = fastpath or FastPath(threaded=False)
        self.metrics = metrics or speaker_metrics()
        if responder is None:  # the responders on this process's fast path (with a fast process: given, remote)
            from ironlb.layer2.responder import Responder

            responder = Responder(
                exclude=exclude_interfaces,
                rescan_interval=rescan_interval,
                gratuitous_interval=gratuitous_interval,
                gratuitous_duration=gratuitous_duration,
                handover_timeout=handover_timeout,
                metrics=self.metrics.layer2,
                standin_metrics=self.metrics.standin,
            )
        self.responder: LayerTwoResponder = responder
        # BFD for peers with a bfdProfile: its sockets open only when the first such peer appears.
        self.bfd: BFDManager | None = None
        if bfd_factory is None and bgp is None:  # BFD on this process's fast path (with a fast process: given)
            from ironlb.bfd.service import BFDManager
            from ironlb.bfd.speaker import FastPathBFD, SpeakerBFD

            self.bfd = BFDManager(metrics=self.metrics.bfd)
            bfd_factory = FastPathBFD(SpeakerBFD(self.bfd), self.fastpath)
        self.bgp = bgp or BGPSpeaker(node, metrics=self.metrics.bgp, bfd_factory=bfd_factory, on_event=on_bgp_event)
        self.metric = self.metrics.announced
        self.current = Announcement()

    async def start(self) -> None:
        """Start the responders and BFD on the fast path (started here if the caller did not)."""
        if not self.fastpath.running:
            await self.fastpath.start()
        await self.fastpath.call(self.responder.start())
        if self.bfd is not None:
            await self.fastpath.call(self.bfd.start())

    def missing_interfaces(self, interfaces: tuple[str, ...]) -> bool:
        """Whether none of ``interfaces`` has a responder here (MetalLB's ``announceFailed``); () means all."""
        if not interfaces:
            return False
        return not self.responder.interface_names.intersection(interfaces)

    async def apply(self, announcement: Announcement, hand_over: Collection[str] = ()) -> None:
        """Answer ARP/NDP for exactly ``layer2``, give each BGP session its routes, publish the series.

        ``hand_over``: IPs another live node now owns; if this node answered them, it goes on answering until the
        new owner claims them on the wire (make before break, see :mod:`ironlb.layer2.responder`).
        """
        layer2 = announcement.layer2
        await self.fastpath.call(
            lambda: self.responder.set_announced(
                {ip: (list(ifs) if ifs else ALL) for ip, ifs in layer2.items()}, hand_over
            )
        )
        plan = announcement.bgp
        await self.bgp.update(
            plan.peers if plan is not None else (),
            plan.routes if plan is not None else {},
            bfd_profiles=announcement.bfd_profiles,
        )
        if announcement.layer2 != self.current.layer2:
            log.info("announcing over layer2: %s", _change_text(self.current.layer2, announcement.layer2))
        self.metric.set(announcement.series)
        self.current = announcement

    async def close(
        self,
        *,
        graceful_restart: bool = True,
        hand_over: Collection[str] = (),
        before_silence: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Stop answering, close the sessions (keeping routes at GR peers) and drop the series.

        A planned stop hands over: the IPs in ``hand_over`` (those another live node will own) are still answered
        while ``before_silence`` runs (the membership LEAVE that makes the others take over) and until the new
        owners claim them on the wire, or the responder's ``handover_timeout``; then the responders close.
        """
        if self.fastpath.running:
            await self.fastpath.call(lambda: self.responder.release(hand_over))
        if before_silence is not None:
            await before_silence()
        if self.fastpath.running:
            if hand_over:
                await self.fastpath.call(self.responder.released())
            await self.fastpath.call(self.responder.close())
        await self.bgp.close(graceful_restart=graceful_restart)
        if self.bfd is not None and self.fastpath.running:
            await self.fastpath.call(self.bfd.close)
        self.metric.set(())
        self.current = Announcement()


def _ips(layer2: Mapping[str, tuple[str, ...]]) -> list[str]:
    return sorted(layer2, key=lambda ip: (6 if ":" in ip else 4, ip))


LOGGED_IPS = 20
"""Up to this many IPs a change is logged with the whole announced set; past it, the count and what changed."""


def _change_text(before: Mapping[str, tuple[str, ...]], after: Mapping[str, tuple[str, ...]]) -> str:
    """The announced set for the log: whole when small; else its size and the IPs added and removed (a few), so
    that with 10,000 Services a change is not a 40 kB line sorted and written every time."""
    if len(after) <= LOGGED_IPS:
        return str(_ips(after)) if after else "nothing"
    added = [ip for ip in after if ip not in before]
    removed = [ip for ip in before if ip not in after]

    def some(ips: list[str]) -> str:
        shown = _ips(dict.fromkeys(ips[:LOGGED_IPS], ()))
        return ", ".join(shown) + (f" and {len(ips) - len(shown)} more" if len(ips) > len(shown) else "")

    parts = [f"{len(after)} IPs"]
    if added:
        parts.append(f"+{len(added)}: {some(added)}")
    if removed:
        parts.append(f"-{len(removed)}: {some(removed)}")
    return "; ".join(parts)
