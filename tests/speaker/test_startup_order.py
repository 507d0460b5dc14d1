"""The speaker's start-up order (issue 16, fast start): its configuration is built once its own objects are listed,
while the Services and EndpointSlices are still being listed, and not built a second time when nothing changed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ironlb.kube.client import ENDPOINT_SLICES, SERVICES, Resource
from ironlb.speaker.speaker import Speaker, SpeakerOptions

NS = "metallb-system"
CONFIG = {
    "ipaddresspools": [{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                        "metadata": {"name": "bgp", "namespace": NS, "resourceVersion": "2"},
                        "spec": {"addresses": ["10.0.0.0/24"]}}],
    "bgpadvertisements": [{"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
                           "metadata": {"name": "b", "namespace": NS, "resourceVersion": "3"},
                           "spec": {"ipAddressPools": ["bgp"]}}],
    "nodes": [{"metadata": {"name": "n1", "resourceVersion": "4", "labels": {"kubernetes.io/hostname": "n1"}}}],
    "namespaces": [{"metadata": {"name": NS, "resourceVersion": "5"}}],
}  # fmt: skip


class GatedSource:
    """Lists the configuration at once; Services and EndpointSlices only once ``gate`` is set. Watches stay idle."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def list_all(self, res: Resource, namespace: str | None = None, **kw: Any) -> tuple[list[dict], str]:
        if res in (SERVICES, ENDPOINT_SLICES):
            await self.gate.wait()
        transform = kw.get("transform") or (lambda o: o)
        return [transform(dict(o, metadata=dict(o["metadata"]))) for o in CONFIG.get(res.plural, [])], "10"

    async def watch(self, res: Resource, namespace: str | None = None, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()
        yield {}


async def test_configuration_is_built_while_the_services_are_still_listed() -> None:
    source = GatedSource()
    speaker = Speaker(source, SpeakerOptions(node="n1", namespace=NS))  # type: ignore[arg-type]
    builds = 0
    build = speaker._build_config

    def counted() -> None:
        nonlocal builds
        builds += 1
        build()

    speaker._build_config = counted  # type: ignore[method-assign]
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(i.run()) for i in speaker.decision_informers]
        synced = tg.create_task(speaker._wait_synced())
        async with asyncio.timeout(10):
            while speaker.config is None:
                await asyncio.sleep(0.01)
        assert not speaker.services.synced.is_set() and not synced.done()
        assert [p.name for p in speaker.config.pools] == ["bgp"] and speaker.config_error is None
        source.gate.set()
        await synced
        assert speaker.services.synced.is_set() and speaker.slices.synced.is_set()
        # nothing of the configuration changed meanwhile: the first sync decides with it, no second build
        assert builds == 1 and not speaker._config_dirty
        for task in tasks:
            task.cancel()


async def test_a_failing_early_build_is_left_to_the_first_sync() -> None:
    source = GatedSource()
    source.gate.set()
    speaker = Speaker(source, SpeakerOptions(node="n1", namespace=NS))  # type: ignore[arg-type]
    build = speaker._build_config
    calls = 0

    def failing_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        build()

    speaker._build_config = failing_once  # type: ignore[method-assign]
    tasks = [asyncio.create_task(i.run()) for i in speaker.decision_informers]
    try:
        async with asyncio.timeout(10):
            await speaker._wait_synced()  # the speaker goes on: the failure is logged, not raised
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert calls == 1 and speaker.config is None and speaker._config_dirty  # the first sync builds it


class RecordingSource(GatedSource):
    """Every list in the order asked, with how many sync passes the speaker had made by then."""

    def __init__(self) -> None:
        super().__init__()
        self.gate.set()
        self.speaker: Speaker | None = None
        self.lists: list[tuple[str, int]] = []

    async def list_all(self, res: Resource, namespace: str | None = None, **kw: Any) -> tuple[list[dict], str]:
        assert self.speaker is not None
        self.lists.append((res.plural, self.speaker.syncs))
        return await super().list_all(res, namespace, **kw)


async def test_status_caches_are_listed_after_the_first_announcement() -> None:
    from ironlb.kube.client import CONFIGURATION_STATES, SERVICE_BGP_STATUSES, SERVICE_L2_STATUSES

    source = RecordingSource()
    speaker = source.speaker = Speaker(source, SpeakerOptions(node="n1", namespace=NS))  # type: ignore[arg-type]
    announced: list[Any] = []

    async def start() -> None:  # no responders here: the order of the lists is under test
        pass

    async def apply(announcement: Any, hand_over: Any = ()) -> None:
        announced.append(announcement)

    speaker.announcer.start = start  # type: ignore[method-assign]
    speaker.announcer.apply = apply  # type: ignore[method-assign]
    status = {r.plural for r in (SERVICE_L2_STATUSES, SERVICE_BGP_STATUSES, CONFIGURATION_STATES)}
    running = asyncio.create_task(speaker.run())
    try:
        async with asyncio.timeout(10):
            while not all(i.synced.is_set() for i in speaker.informers):
                await asyncio.sleep(0.01)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await speaker.fastpath.stop()
    assert announced, "no announcement"
    listed = [name for name, _ in source.lists]
    assert status <= set(listed) and {"services", "endpointslices", "ipaddresspools"} <= set(listed)
    # every decision cache was listed before the first announcement, every status cache after it
    decision = {i.resource.plural for i in speaker.decision_informers}
    assert all(syncs == 0 for name, syncs in source.lists if name in decision)
    assert all(syncs >= 1 for name, syncs in source.lists if name in status)


class CountingSource(RecordingSource):
    """Lists that take a while (so that they overlap), the most caches' running at once before the first pass, and each
    watch with whether the speaker's first pass was done when it started."""

    def __init__(self) -> None:
        super().__init__()
        self.running = self.peak = 0
        self.watched: list[tuple[str, bool]] = []

    async def list_all(self, res: Resource, namespace: str | None = None, **kw: Any) -> tuple[list[dict], str]:
        assert self.speaker is not None
        first = not self.speaker._first_pass.is_set() and res.plural != "pods"  # not the membership's discovery
        self.running += first
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0.01)
            return await super().list_all(res, namespace, **kw)
        finally:
            self.running -= first

    async def watch(self, res: Resource, namespace: str | None = None, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        assert self.speaker is not None
        self.watched.append((res.plural, self.speaker._first_pass.is_set()))
        await asyncio.Event().wait()
        yield {}


async def test_decision_caches_list_on_a_few_connections_and_watch_after_the_first_pass() -> None:
    """12 decision caches: their first lists share START_LISTS connections (not one TLS handshake each before the
    first announcement), and none watches (a watch holds a connection of its own) before the first pass."""
    from ironlb.speaker.speaker import START_LISTS

    source = CountingSource()
    speaker = source.speaker = Speaker(source, SpeakerOptions(node="n1", namespace=NS))  # type: ignore[arg-type]

    async def start() -> None:
        pass

    async def apply(announcement: Any, hand_over: Any = ()) -> None:
        pass

    speaker.announcer.start = start  # type: ignore[method-assign]
    speaker.announcer.apply = apply  # type: ignore[method-assign]
    decision = {i.resource.plural for i in speaker.decision_informers}
    running = asyncio.create_task(speaker.run())
    try:
        async with asyncio.timeout(10):
            while not decision <= {name for name, _ in source.watched}:
                await asyncio.sleep(0.01)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await speaker.fastpath.stop()
    assert len(speaker.decision_informers) == 12 and START_LISTS == 4
    assert 1 < source.peak <= START_LISTS
    assert all(first_pass for name, first_pass in source.watched if name in decision)
