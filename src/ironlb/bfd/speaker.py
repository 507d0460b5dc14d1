"""Glue between :class:`~ironlb.bfd.service.BFDManager` and the BGP speaker's ``bfd_factory`` hook.

``ironlb.bgp.speaker.BGPSpeaker`` calls ``bfd_factory(request)`` for every BGP session whose peer names a
``bfdProfile`` and awaits ``handle.close()`` when the session (or only the profile) goes away. The request
carries the profile, the session's addresses (a :class:`PeerAddresses`: ``ironlb.bgp.config.PeerConfig``),
whether the peer is multi-hop (``ebgpMultiHop``) and ``on_down(reason)``, which makes the speaker drop the TCP
connection at once (the session redials with its backoff). Usage::

    bfd = BFDManager(metrics=BFDMetrics())
    await bfd.start()
    speaker = BGPSpeaker(node_name, bfd_factory=SpeakerBFD(bfd))
    ...
    await speaker.close(); bfd.close()

A profile the BFD engine refuses (out-of-range values) or a socket error is logged as an
error and the BGP session runs without BFD, rather than failing the whole configuration update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Protocol

from ironlb.config.bfdprofile import BFDProfile

from .fsm import BFDConfigError
from .service import BFDManager, BFDPeerHandle
from .wire import Diag

if TYPE_CHECKING:
    from ironlb.fastpath import FastPath

log = logging.getLogger(__name__)


class PeerAddresses(Protocol):
    """The addresses of the BGP session BFD watches (``ironlb.bgp.config.PeerConfig`` has them): BFD does not
    depend on BGP, the glue is structural."""

    @property
    def peer_address(self) -> IPv4Address | IPv6Address: ...

    @property
    def source_address(self) -> IPv4Address | IPv6Address | None: ...


class SpeakerRequest(Protocol):
    """The fields of ``ironlb.bgp.speaker.BFDRequest`` this module uses (structural, to avoid an import cycle)."""

    @property
    def profile(self) -> BFDProfile: ...

    @property
    def config(self) -> PeerAddresses: ...

    @property
    def multihop(self) -> bool: ...

    @property
    def on_down(self) -> Callable[[str], None]: ...


class SpeakerBFDHandle:
    """What the speaker keeps per session; ``close()`` removes the BFD session (AdminDown to the peer first)."""

    def __init__(self, manager: BFDManager, handle: BFDPeerHandle | None) -> None:
        self.manager = manager
        self.handle = handle

    async def close(self) -> None:
        if self.handle is not None:
            self.manager.remove_peer(self.handle)
            self.handle = None


def down_reason(handle: BFDPeerHandle) -> str:
    """Human text for why the session went down, from its local diagnostic."""
    diag = int(handle.session.local_diag)
    try:
        return Diag(diag).name.lower().replace("_", " ")
    except ValueError:
        return f"diag {diag}"


class SpeakerBFD:
    """A ``bfd_factory`` for ``BGPSpeaker``: one BFD session per BGP session that asks for it.

    ``observer(peer_address, up)``, if given, sees every change reported to the speaker (logging, tests).
    """

    def __init__(self, manager: BFDManager, observer: Callable[[str, bool], None] | None = None) -> None:
        self.manager = manager
        self.observer = observer

    def __call__(self, request: SpeakerRequest) -> SpeakerBFDHandle:
        config = request.config
        holder: list[BFDPeerHandle] = []
        on_down = request.on_down

        def on_change(up: bool) -> None:
            if self.observer is not None:
                self.observer(str(config.peer_address), up)
            if not up:
                on_down(f"BFD {down_reason(holder[0])}" if holder else "BFD down")

        try:
            handle = self.manager.add_peer(
                config.peer_address,
                config.source_address,
                request.profile,
                multihop=request.multihop,
                on_change=on_change,
            )
        except (BFDConfigError, ValueError, OSError) as exc:
            log.error("BGP peer %s: BFD not started, the session runs without it: %s", config.peer_address, exc)
            return SpeakerBFDHandle(self.manager, None)
        holder.append(handle)
        return SpeakerBFDHandle(self.manager, handle)


@dataclass(frozen=True)
class Addresses:
    """:class:`PeerAddresses` as plain values (the fast process's, read from its channel)."""

    peer_address: IPv4Address | IPv6Address
    source_address: IPv4Address | IPv6Address | None


@dataclass(frozen=True)
class Request:
    """A :class:`SpeakerRequest` as plain values: the fast path's relay of a BGP session's request (its ``on_down``
    hops back to the main loop, where the session lives) and the fast process's (its ``on_down`` answers on the
    channel)."""

    profile: BFDProfile
    config: PeerAddresses
    multihop: bool
    on_down: Callable[[str], None]


class FastPathBFDHandle:
    """The speaker's handle for a BFD session that lives on the fast path."""

    def __init__(self, fastpath: FastPath) -> None:
        self._fastpath = fastpath
        self.inner: SpeakerBFDHandle | None = None  # set on the fast loop

    async def close(self) -> None:
        async def close_inner() -> None:
            # Queued after the add (call_soon_threadsafe keeps order), so ``inner`` is set by now.
            if self.inner is not None:
                await self.inner.close()
                self.inner = None

        if self._fastpath.running:
            await self._fastpath.call(close_inner())


class FastPathBFD:
    """A ``bfd_factory`` for a ``BGPSpeaker`` on the main loop whose :class:`BFDManager` runs on the fast path.

    Sessions are added and removed on the fast loop (their timers and sockets must not wait on BGP decoding);
    a failure is handed back to the main loop, where the BGP session is dropped.
    """

    def __init__(self, inner: SpeakerBFD, fastpath: FastPath) -> None:
        self.inner = inner
        self.fastpath = fastpath

    def __call__(self, request: SpeakerRequest) -> FastPathBFDHandle:
        relayed = Request(
            request.profile, request.config, request.multihop, self.fastpath.to_main(request.on_down)
        )
        handle = FastPathBFDHandle(self.fastpath)

        def add() -> None:
            handle.inner = self.inner(relayed)

        self.fastpath.post(add)
        return handle


__all__ = [
    "Addresses",
    "FastPathBFD",
    "FastPathBFDHandle",
    "PeerAddresses",
    "Request",
    "SpeakerBFD",
    "SpeakerBFDHandle",
    "SpeakerRequest",
    "down_reason",
]
