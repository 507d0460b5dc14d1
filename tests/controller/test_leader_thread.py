"""The Lease is renewed from its own thread: a main loop busy for longer than the renew deadline keeps the lead."""

from __future__ import annotations

import asyncio
import contextlib
import time

from ironlb.kube.leader import LeaderElector

from .test_kube_units import FakeLeases as _FakeLeases


class FakeLeases(_FakeLeases):
    async def close(self) -> None:
        self.closed = True


async def test_renewals_go_on_while_the_main_loop_is_blocked() -> None:
    fake = FakeLeases()
    elector = await LeaderElector.on_own_thread(
        lambda: fake,  # type: ignore[arg-type,return-value]
        "ns",
        "lease",
        "a",
        lease_duration=0.6,
        renew_deadline=0.4,
        retry_period=0.05,
    )
    renewals: list[int] = []
    blocked = asyncio.Event()

    async def lead() -> None:
        await asyncio.sleep(0.1)
        start = fake.rv
        end = time.monotonic() + 1.5  # a validation that holds this loop for well past renew_deadline
        while time.monotonic() < end:
            sum(range(1000))
        renewals.append(fake.rv - start)
        blocked.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(elector.run(lead))
    try:
        await asyncio.wait_for(blocked.wait(), 10)
        await asyncio.sleep(0.2)
        assert renewals[0] >= 2, renewals  # ~30 at a 50 ms period; none if renewing needed this loop
        assert elector.is_leader and not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await elector.close()
    assert fake.obj is not None and fake.obj["spec"]["holderIdentity"] == ""  # released on the way out
    assert fake.closed and not elector.fastpath.running  # type: ignore[union-attr]
