"""One construction of a node's :class:`~ironlb.announce.announcer.Announcer` for ``ironlb speaker`` and
``ironlb run``: the fast process (when the options ask for one) with its responder and BFD, the fast path, and the
Announcer on them, from the options both carry under the same names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ironlb.announce.announcer import Announcer, LayerTwoResponder
from ironlb.bgp.speaker import BFDFactory, BGPSpeaker
from ironlb.fastpath import FastPath
from ironlb.fastproc.parent import FastPathSettings, FastProcess, FastProcessOptions
from ironlb.fastproc.spawn import Spawned
from ironlb.metrics.speaker import speaker_metrics

if TYPE_CHECKING:
    from ironlb.bgp.fsm import Event

__all__ = ["AnnouncerSettings", "build_announcer"]


class AnnouncerSettings(FastPathSettings, Protocol):
    """What ``SpeakerOptions`` and ``ironlb run``'s ``RunOptions`` both carry for the Announcer."""

    @property
    def node(self) -> str: ...
    @property
    def fastpath_process(self) -> bool: ...


def build_announcer(
    options: AnnouncerSettings,
    *,
    on_lost: Callable[[str], None],
    threaded: bool = True,
    spawned: Spawned | None = None,
    responder: LayerTwoResponder | None = None,
    bgp: BGPSpeaker | None = None,
    bfd_factory: BFDFactory | None = None,
    on_bgp_event: Callable[[str, Event], None] | None = None,
    fastpath: FastPath | None = None,
) -> tuple[Announcer, FastProcess | None]:
    """The node's Announcer, and its fast process when ``options.fastpath_process`` (``on_lost`` is called when
    that process is lost). The fast process serves the responder and BFD unless given (``responder``; ``bgp`` or
    ``bfd_factory``: tests). Without a fast process the responders run on a fast path of their own: a thread when
    ``threaded``, else the caller's loop."""
    fastproc: FastProcess | None = None
    if options.fastpath_process:
        fastproc = FastProcess(FastProcessOptions.of(options), metrics=speaker_metrics(), on_lost=on_lost,
                               spawned=spawned)  # fmt: skip
        responder = responder or fastproc.responder
        if bgp is None and bfd_factory is None:
            bfd_factory = fastproc.bfd
    announcer = Announcer(
        options.node,
        responder=responder,
        bgp=bgp,
        bfd_factory=bfd_factory,
        exclude_interfaces=options.exclude_interfaces,
        rescan_interval=options.rescan_interval,
        gratuitous_interval=options.gratuitous_interval,
        gratuitous_duration=options.gratuitous_duration,
        handover_timeout=options.handover_timeout,
        on_bgp_event=on_bgp_event,
        fastpath=fastpath or FastPath(threaded=threaded and fastproc is None),
    )
    return announcer, fastproc
