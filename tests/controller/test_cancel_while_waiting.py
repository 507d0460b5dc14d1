"""A stop (task cancellation) that arrives in the same turn of the loop as the thing a task waits for.

On Python 3.11 ``asyncio.wait_for`` returns the awaited result instead of raising when its task is cancelled just
as that result arrives: the cancellation is lost. A loop around it then waits on, and the speaker's SIGTERM
handling waited its whole shutdown timeout (10 s) for its tasks, so the stop was late and, under a supervisor
that kills after 10 s, lost its restart hold (seen as a rare failure of
tests/speaker/test_speaker_e2e.py::test_restart_holds_with_the_fast_path_on_a_thread, SIGTERM right after the
speaker's first announcement, as its status caches finished listing).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from ironlb.kube.informer import wait_synced


async def _cancelled_as_it_resolves(wait: Any, resolve: Any) -> bool:
    """Start ``wait``, let it block, then resolve what it waits for and cancel it in the same turn; True when the
    task ends cancelled (within a bound far below the waits' own timeouts)."""
    task = asyncio.create_task(wait)
    for _ in range(3):
        await asyncio.sleep(0)  # it is waiting now
    resolve()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2.0)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=2.0)
    return task in done and task.cancelled()


async def test_wait_synced_stops_when_cancelled_as_a_cache_syncs() -> None:
    first = SimpleNamespace(name="servicel2statuses", synced=asyncio.Event())
    second = SimpleNamespace(name="configurationstates", synced=asyncio.Event())  # cancelled too: never syncs
    assert await _cancelled_as_it_resolves(wait_synced([first, second]), first.synced.set)  # type: ignore[list-item]


class _NoPods:
    """A client that lists no speaker Pods (the discovery loop's only call)."""

    async def list_all(self, *args: Any, **kw: Any) -> tuple[list[dict[str, Any]], str]:
        return [], "1"


async def test_the_speakers_discovery_loop_stops_when_cancelled_as_it_is_woken() -> None:
    from ironlb.speaker.speaker import Speaker, SpeakerOptions

    speaker = Speaker(_NoPods(), SpeakerOptions(node="n1", namespace="metallb-system"))  # type: ignore[arg-type]
    assert await _cancelled_as_it_resolves(speaker._discovery_loop(), speaker._discover_wake.set)


async def test_the_lease_renew_loop_stops_when_cancelled_as_a_renewal_completes() -> None:
    """Else the leader's run() waits for its renewer without end (no timeout there), or, with the renewer on its
    own thread, the renewer goes on renewing the Lease after release() gave it up."""
    from ironlb.kube.leader import LeaderElector
    from tests.controller.test_kube_units import FakeLeases

    class GatedLeases(FakeLeases):
        def __init__(self) -> None:
            super().__init__()
            self.gate = asyncio.Event()
            self.waiting = False

        async def get_or_none(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
            self.waiting = True
            await self.gate.wait()
            return await super().get_or_none(res, name, namespace)

    fake = GatedLeases()
    elector = LeaderElector(fake, "ns", "lease", "a", lease_duration=3.0, renew_deadline=2.0,  # type: ignore[arg-type]
                            retry_period=0.01)  # fmt: skip

    async def renewing() -> None:
        await elector._renew_loop()

    task = asyncio.create_task(renewing())
    async with asyncio.timeout(5):
        while not fake.waiting:
            await asyncio.sleep(0.005)
    fake.gate.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2.0)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=2.0)
    assert task in done and task.cancelled()
