"""BFD across the loops: sessions are added and removed on the fast thread, a failure comes back to the main one."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from ironlb.bfd.speaker import FastPathBFD
from ironlb.fastpath import FastPath


@dataclass
class Request:
    profile: Any
    config: Any
    multihop: bool
    on_down: Any


class FakeInner:
    """Stands in for SpeakerBFD: records the thread of every call."""

    def __init__(self) -> None:
        self.added_on: threading.Thread | None = None
        self.closed_on: threading.Thread | None = None
        self.request: Any = None

    def __call__(self, request: Any) -> FakeInner:
        self.added_on = threading.current_thread()
        self.request = request
        return self

    async def close(self) -> None:
        self.closed_on = threading.current_thread()


async def test_sessions_live_on_the_fast_thread_and_failures_come_back() -> None:
    async with FastPath() as fp:
        inner = FakeInner()
        main = threading.current_thread()
        downs: list[tuple[str, threading.Thread]] = []
        got = asyncio.Event()

        def on_down(reason: str) -> None:
            downs.append((reason, threading.current_thread()))
            got.set()

        handle = FastPathBFD(inner, fp)(Request("profile", "config", False, on_down))  # type: ignore[arg-type]
        await fp.call(lambda: None)  # the add was queued before this
        assert inner.added_on is not None and inner.added_on is not main
        fp.post(inner.request.on_down, "detection time expired")  # the BFD engine reports from its loop
        await asyncio.wait_for(got.wait(), 5)
        assert downs == [("detection time expired", main)]
        await handle.close()
        assert inner.closed_on is inner.added_on
