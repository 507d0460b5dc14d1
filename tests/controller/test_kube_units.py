"""Fast tests of the client layer's pieces, with fakes that inject the faults a real apiserver produces:
the informer (list/watch, bookmarks, 410, dropped connections), the work queue, the event recorder and the
leader elector."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ironlb.kube.client import LEASES, SERVICES, ApiError, Resource, TransportError
from ironlb.kube.events import EventRecorder
from ironlb.kube.informer import ADDED, DELETED, MODIFIED, Backoff, Informer
from ironlb.kube.leader import LeaderElector, LeadershipLost
from ironlb.kube.workqueue import REPROCESS_ALL, ShutDown, WorkQueue


def svc(name: str, rv: int, ns: str = "default", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv), "managedFields": [{}]}, **extra}


class FakeSource:
    """Scripted lists and watches. ``lists`` and ``watches`` are consumed in order; a watch script is a list of
    events, or an exception instance to raise (at the start, or after the events when it is the last item)."""

    def __init__(self) -> None:
        self.lists: list[tuple[list[dict[str, Any]], str]] = []
        self.watches: list[list[Any]] = []
        self.list_calls = 0
        self.watch_from: list[str | None] = []
        self.watch_params: list[dict[str, Any]] = []
        self.idle = asyncio.Event()

    async def list_all(self, res: Resource, namespace: str | None = None, **kw: Any) -> tuple[list[dict], str]:
        self.list_calls += 1
        items, rv = self.lists.pop(0)
        transform = kw.get("transform") or (lambda o: o)
        return [transform(dict(i, metadata=dict(i["metadata"]))) for i in items], rv

    async def watch(self, res: Resource, namespace: str | None = None, *, resource_version: str | None = None,
                    **kw: Any) -> AsyncIterator[dict[str, Any]]:
        self.watch_from.append(resource_version)
        self.watch_params.append(kw)
        if not self.watches:
            self.idle.set()
            await asyncio.sleep(3600)
        for item in self.watches.pop(0):
            if isinstance(item, BaseException):
                raise item
            yield item


async def run_until(informer: Informer, source: FakeSource, timeout: float = 2.0) -> None:
    """Run the informer until the fake has nothing left to say."""
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(source.idle.wait(), timeout)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def recording(informer: Informer) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def handler(kind: str, old: dict | None, new: dict | None) -> None:
        obj = new or old or {}
        seen.append((kind, obj["metadata"]["name"]))

    informer.add_handler(handler)
    return seen


def fast_informer(source: FakeSource) -> Informer:
    return Informer(source, SERVICES, backoff=Backoff(initial=0.001, maximum=0.002), watch_timeout=(1, 1))


# ---------------------------------------------------------------------------------------------------- informer
async def test_list_then_watch_from_the_lists_version_with_bookmarks() -> None:
    src = FakeSource()
    src.lists = [([svc("a", 5)], "10")]
    src.watches = [
        [{"type": "ADDED", "object": svc("b", 11)},
         {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
         {"type": "MODIFIED", "object": svc("a", 16)}],  # ends cleanly (server timeout): re-watch from 16
    ]
    inf = fast_informer(src)
    seen = recording(inf)
    await run_until(inf, src)
    assert inf.synced.is_set()
    assert seen == [(ADDED, "a"), (ADDED, "b"), (MODIFIED, "a")]
    assert src.watch_from == ["10", "16"]
    assert src.list_calls == 1
    assert all(p["allow_bookmarks"] for p in src.watch_params)
    assert inf.stats.bookmarks == 1
    assert "managedFields" not in inf.store.get("default/a")["metadata"]
    assert inf.store.get("default/a")["kind"] == "Service"
    assert "managedFields" not in inf.store.get("default/b")["metadata"]


async def test_first_lists_share_the_slots_and_watch_only_once_let() -> None:
    """``list_slots`` bounds how many first lists run at once (each holds a connection); ``watch_after`` holds every
    watch (which would keep a connection of its own) until it is set: then each watches from its list's version."""
    running = peak = 0
    sources = []

    class Slow(FakeSource):
        async def list_all(self, res: Resource, namespace: str | None = None, **kw: Any) -> tuple[list[dict], str]:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            return await super().list_all(res, namespace, **kw)

    slots, let = asyncio.Semaphore(2), asyncio.Event()
    informers = []
    for i in range(5):
        src = Slow()
        src.lists = [([svc(f"s{i}", 5)], str(10 + i))]
        sources.append(src)
        informers.append(Informer(src, SERVICES, list_slots=slots, watch_after=let))
    tasks = [asyncio.create_task(inf.run()) for inf in informers]
    try:
        async with asyncio.timeout(5):
            for inf in informers:
                await inf.synced.wait()
            await asyncio.sleep(0.05)
            assert peak == 2 and all(src.watch_from == [] for src in sources)  # listed, two at a time; no watch
            let.set()
            for src in sources:
                await src.idle.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert [src.watch_from for src in sources] == [[str(10 + i)] for i in range(5)]


async def test_bookmark_alone_moves_the_resume_point() -> None:
    src = FakeSource()
    src.lists = [([], "10")]
    src.watches = [[{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "99"}}}]]
    inf = fast_informer(src)
    await run_until(inf, src)
    assert src.watch_from == ["10", "99"]


async def test_410_during_watch_relists_and_reports_deletions_from_the_gap() -> None:
    src = FakeSource()
    src.lists = [([svc("a", 5), svc("b", 6), svc("c", 7)], "10"), ([svc("a", 5), svc("c", 20), svc("d", 21)], "30")]
    src.watches = [
        [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}],
    ]
    inf = fast_informer(src)
    seen = recording(inf)
    await run_until(inf, src)
    assert src.list_calls == 2
    assert src.watch_from == ["10", "30"]
    assert seen[3:] == [(DELETED, "b"), (MODIFIED, "c"), (ADDED, "d")]  # "a" unchanged: not reported
    assert sorted(inf.store.keys()) == ["default/a", "default/c", "default/d"]
    assert inf.stats.gone == 1 and inf.stats.deleted_in_gap == 1
    assert "managedFields" not in inf.store.get("default/a")["metadata"]  # transformed as listed


async def test_410_when_the_watch_is_refused_relists() -> None:
    src = FakeSource()
    src.lists = [([svc("a", 5)], "10"), ([], "40")]
    src.watches = [[ApiError("WATCH", "/api/v1/services", 410, {"code": 410, "reason": "Gone"})]]
    inf = fast_informer(src)
    seen = recording(inf)
    await run_until(inf, src)
    assert seen == [(ADDED, "a"), (DELETED, "a")]
    assert src.watch_from == ["10", "40"]


async def test_dropped_connection_rewatches_without_relisting() -> None:
    src = FakeSource()
    src.lists = [([svc("a", 5)], "10")]
    src.watches = [
        [{"type": "MODIFIED", "object": svc("a", 12)}, TransportError("peer closed connection")],
        [TransportError("connection refused")],
        [TransportError("connection refused")],
        [{"type": "DELETED", "object": svc("a", 13)}],
    ]
    inf = fast_informer(src)
    seen = recording(inf)
    await run_until(inf, src)
    assert src.list_calls == 1
    assert src.watch_from == ["10", "12", "12", "12", "13"]
    assert seen == [(ADDED, "a"), (MODIFIED, "a"), (DELETED, "a")]
    assert inf.stats.errors == 3


async def test_read_timeout_is_passed_and_errors_back_off() -> None:
    src = FakeSource()
    src.lists = [([], "1")]
    src.watches = [[TransportError("ReadTimeout")]]
    delays: list[float] = []

    class Recording(Backoff):
        def next(self) -> float:
            d = super().next()
            delays.append(d)
            return 0.0

    inf = Informer(src, SERVICES, backoff=Recording(initial=0.8, maximum=30.0), read_timeout=42.0)
    await run_until(inf, src)
    assert src.watch_params[0]["read_timeout"] == 42.0
    assert delays and 0.8 <= delays[0] <= 1.6


async def test_list_errors_back_off_and_retry() -> None:
    src = FakeSource()
    calls = 0

    async def flaky(res: Resource, namespace: str | None = None, **kw: Any) -> tuple[list[dict], str]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransportError("connection refused")
        return [kw["transform"](svc("a", 1))], "5"

    src.list_all = flaky  # type: ignore[method-assign]
    inf = fast_informer(src)
    await run_until(inf, src)
    assert calls == 3 and inf.synced.is_set() and "default/a" in inf.store


async def test_put_local_suppresses_the_echo_and_older_events() -> None:
    src = FakeSource()
    src.lists = [([svc("a", 5)], "10")]
    src.watches = [[{"type": "MODIFIED", "object": svc("a", 11)}, {"type": "MODIFIED", "object": svc("a", 12)}]]
    inf = fast_informer(src)
    seen = recording(inf)

    def write_back(kind: str, old: dict | None, new: dict | None) -> None:
        if kind == ADDED:  # the controller writes status and stores the apiserver's answer
            inf.put_local(svc("a", 12, status={"mine": True}))

    inf.add_handler(write_back)
    await run_until(inf, src)
    assert seen == [(ADDED, "a")]  # rv 11 is older than what we wrote, rv 12 is our own write
    assert inf.store.get("default/a")["status"] == {"mine": True}


async def test_handler_errors_do_not_stop_the_informer() -> None:
    src = FakeSource()
    src.lists = [([svc("a", 1)], "2")]
    src.watches = [[{"type": "ADDED", "object": svc("b", 3)}]]
    inf = fast_informer(src)

    def broken(kind: str, old: dict | None, new: dict | None) -> None:
        raise RuntimeError("bug")

    inf.add_handler(broken)
    seen = recording(inf)
    await run_until(inf, src)
    assert seen == [(ADDED, "a"), (ADDED, "b")]


# ---------------------------------------------------------------------------------------------------- work queue
async def test_queue_coalesces_and_never_hands_out_a_key_twice() -> None:
    q: WorkQueue[str] = WorkQueue()
    for k in ("a", "b", "a", REPROCESS_ALL, "a"):
        q.add(k)
    assert len(q) == 3
    assert await q.get() == "a"
    q.add("a")  # while processing: not handed out again until done
    assert await q.get() == "b"
    assert await q.get() == REPROCESS_ALL
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(q.get(), 0.05)
    q.done("a")
    assert await q.get() == "a"
    q.done("a")
    q.done("b")
    assert len(q) == 0


async def test_queue_rate_limits_and_forgets() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.02, max_delay=0.05)
    loop = asyncio.get_running_loop()
    delays = []
    for _ in range(10):
        start = loop.time()
        q.add_rate_limited("k")
        assert await q.get() == "k"
        q.done("k")
        delays.append(loop.time() - start)
    assert q.num_requeues("k") == 10
    # 0.02, 0.04, then capped at 0.05: uncapped, the 10th would wait 0.02 * 2**9 = 10 s. Only the lower bounds are
    # exact (a loaded machine makes every wait longer, never shorter).
    assert delays[0] >= 0.015 and delays[1] >= 0.035 and delays[9] < 5
    q.forget("k")
    assert q.num_requeues("k") == 0


async def test_queue_add_after_keeps_the_earliest_and_shutdown_stops_getters() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("k", 5.0)
    q.add_after("k", 0.01)
    q.add_after("k", 3.0)
    assert await asyncio.wait_for(q.get(), 1.0) == "k"
    q.done("k")
    q.add_after("late", 10)
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shut_down()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiter, 1.0)
    q.add("x")
    assert len(q) == 0


# ---------------------------------------------------------------------------------------------------- events
class FakeEvents:
    def __init__(self, fail_first: int = 0) -> None:
        self.created: list[dict[str, Any]] = []
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.fail_first = fail_first

    async def create(self, res: Resource, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        if self.fail_first:
            self.fail_first -= 1
            raise TransportError("connection refused")
        self.created.append(obj)
        return obj

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None,
                    **kw: Any) -> dict[str, Any]:
        self.patches.append((name, patch))
        return {}


SERVICE = {"kind": "Service", "apiVersion": "v1",
           "metadata": {"name": "my-service", "namespace": "default", "uid": "u1", "resourceVersion": "7"}}


async def drain(recorder: EventRecorder) -> None:
    task = asyncio.create_task(recorder.run())
    await recorder.flush(5)
    await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_recorder_writes_like_client_go_and_deduplicates() -> None:
    fake = FakeEvents()
    rec = EventRecorder(fake, "metallb-controller")
    for _ in range(3):
        rec.event(SERVICE, "Normal", "IPAllocated", 'Assigned IP ["192.168.1.240"]')
    await drain(rec)
    (ev,) = fake.created
    assert ev["involvedObject"] == {"kind": "Service", "apiVersion": "v1", "name": "my-service",
                                    "namespace": "default", "uid": "u1", "resourceVersion": "7"}
    assert (ev["type"], ev["reason"], ev["message"]) == ("Normal", "IPAllocated", 'Assigned IP ["192.168.1.240"]')
    assert ev["source"] == {"component": "metallb-controller"} and ev["count"] == 1
    assert ev["metadata"]["namespace"] == "default" and ev["metadata"]["name"].startswith("my-service.")
    assert [p[1]["count"] for p in fake.patches] == [2, 3]
    assert all(p[0] == ev["metadata"]["name"] for p in fake.patches)


async def test_recorder_spam_filter_and_aggregation() -> None:
    fake = FakeEvents()
    rec = EventRecorder(fake, "metallb-controller")
    for _ in range(30):
        rec.event(SERVICE, "Warning", "AllocationFailed", "no available IPs")
    await drain(rec)
    assert rec.stats.spam_dropped == 5  # a burst of 25 per object and message
    fake2 = FakeEvents()
    rec2 = EventRecorder(fake2, "metallb-controller")
    for i in range(12):
        rec2.event(SERVICE, "Warning", "AllocationFailed", f"message {i}")
    await drain(rec2)
    assert len(fake2.created) == 10  # 9 distinct, then one aggregate that later ones update
    assert fake2.created[-1]["message"] == "(combined from similar events): message 9"
    assert [p[1]["message"] for p in fake2.patches] == [
        "(combined from similar events): message 10", "(combined from similar events): message 11"]


async def test_recorder_retries_and_never_blocks() -> None:
    fake = FakeEvents(fail_first=2)
    rec = EventRecorder(fake, "metallb-controller")
    rec.event(SERVICE, "Normal", "IPAllocated", "x")
    task = asyncio.create_task(rec.run())
    deadline = asyncio.get_running_loop().time() + 30
    while not fake.created and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(fake.created) == 1
    for i in range(1500):  # the queue is bounded: beyond it events wait in the backlog, the caller never waits
        rec.event(SERVICE, "Normal", "IPAllocated", f"{i}")
    assert rec.stats.queue_dropped == 0 and rec.stats.backlogged == 500 and rec.pending() == 1500


async def test_recorder_burst_loses_no_event_and_folds_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """10x the queue at once, one event per object (10,000 Services), some objects twice: all written, repeats as counts."""
    fake = FakeEvents()
    rec = EventRecorder(fake, "metallb-controller")
    services = [{"kind": "Service", "apiVersion": "v1",
                 "metadata": {"name": f"svc-{i:05d}", "namespace": "default", "uid": f"u{i}"}} for i in range(10_000)]
    for svc in services:
        rec.event(svc, "Normal", "IPAllocated", 'Assigned IP ["10.0.0.1"]')
    for svc in services[-3:]:  # repeats that arrive while their first copy is still in the backlog
        rec.event(svc, "Normal", "IPAllocated", 'Assigned IP ["10.0.0.1"]')
    assert rec.stats.queue_dropped == 0 and rec.pending() == 10_000
    await drain(rec)
    assert len(fake.created) == 10_000 and not fake.patches
    assert {ev["involvedObject"]["name"] for ev in fake.created} == {f"svc-{i:05d}" for i in range(10_000)}
    assert [ev["count"] for ev in fake.created[-3:]] == [2, 2, 2]
    assert sum(ev["count"] for ev in fake.created) == rec.stats.queued == 10_003
    # Memory stays bounded: past BACKLOG_SIZE distinct backlogged events, new ones are dropped and counted.
    monkeypatch.setattr("ironlb.kube.events.BACKLOG_SIZE", 5)
    small = EventRecorder(FakeEvents(), "metallb-controller")
    for svc in services[:1010]:
        small.event(svc, "Normal", "IPAllocated", "x")
    assert small.pending() == 1005 and small.stats.queue_dropped == 5


# ---------------------------------------------------------------------------------------------------- leases
class FakeLeases:
    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.rv = 0
        self.down = False

    async def get_or_none(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        if self.down:
            raise TransportError("apiserver down")
        return None if self.obj is None else {"metadata": dict(self.obj["metadata"]), "spec": dict(self.obj["spec"])}

    async def create(self, res: Resource, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        assert res is LEASES
        if self.obj is not None:
            raise ApiError("POST", "lease", 409, {"reason": "AlreadyExists"})
        self.rv += 1
        self.obj = {"metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}, "spec": dict(obj["spec"])}
        return await self.get_or_none(res, "")  # type: ignore[return-value]

    async def replace(self, res: Resource, obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
        if self.down:
            raise TransportError("apiserver down")
        assert self.obj is not None
        if obj["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
            raise ApiError("PUT", "lease", 409, {"reason": "Conflict"})
        self.rv += 1
        self.obj = {"metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}, "spec": dict(obj["spec"])}
        return await self.get_or_none(res, "")  # type: ignore[return-value]


def elector(fake: FakeLeases, identity: str) -> LeaderElector:
    # Seconds, not tenths: on a loaded machine a renewal may be scheduled late, and a 0.4 s deadline then expires.
    return LeaderElector(fake, "ns", "lease", identity,  # type: ignore[arg-type]
                         lease_duration=3.0, renew_deadline=2.0, retry_period=0.1)


async def test_leader_election_one_leader_then_handover_on_release() -> None:
    fake = FakeLeases()
    a, b = elector(fake, "a"), elector(fake, "b")
    leading: list[str] = []
    release_a = asyncio.Event()

    async def lead_a() -> None:
        leading.append("a")
        await release_a.wait()

    async def lead_b() -> None:
        leading.append("b")
        await asyncio.sleep(3600)

    ta = asyncio.create_task(a.run(lead_a))
    await asyncio.sleep(0.1)
    tb = asyncio.create_task(b.run(lead_b))
    await asyncio.sleep(3.5)  # longer than the lease: a keeps renewing, b must not take over
    assert leading == ["a"] and a.is_leader and not b.is_leader
    release_a.set()
    await asyncio.wait_for(ta, 10)
    deadline = asyncio.get_running_loop().time() + 15
    # is_leader turns true just before the elector starts b's work as a task: wait for the work to have begun too.
    while not (b.is_leader and len(leading) == 2) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert leading == ["a", "b"] and fake.obj is not None and fake.obj["spec"]["holderIdentity"] == "b"
    assert fake.obj["spec"]["leaseTransitions"] == 1
    tb.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tb


async def test_leader_gives_up_when_it_cannot_renew() -> None:
    fake = FakeLeases()
    a = elector(fake, "a")
    cancelled = asyncio.Event()

    async def lead() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    task = asyncio.create_task(a.run(lead))
    await asyncio.sleep(0.1)
    fake.down = True
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(task, 20)
    assert cancelled.is_set() and not a.is_leader


async def test_a_write_answered_after_the_deletion_does_not_bring_the_object_back() -> None:
    # The controller PATCHes a pool's status (the apiserver stores it at rv 11), the user deletes the pool (rv 12),
    # and the watch delivers both before the PATCH's answer is read: that answer must not resurrect the pool.
    src = FakeSource()
    src.lists = [([svc("a", 5)], "10")]
    src.watches = [[{"type": "MODIFIED", "object": svc("a", 11)}, {"type": "DELETED", "object": svc("a", 12)}]]
    inf = fast_informer(src)
    seen = recording(inf)
    await run_until(inf, src)
    assert seen == [(ADDED, "a"), (MODIFIED, "a"), (DELETED, "a")]
    inf.put_local(svc("a", 11, status={"mine": True}))
    assert "default/a" not in inf.store
    # Created again under the same name: newer than the deletion, so our own write of it is stored.
    inf.put_local(svc("a", 13))
    assert "default/a" in inf.store
