"""The fast path shell: work crosses between the loops in order, results and errors come back, stop cleans up."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ironlb.fastpath import FastPath


async def test_call_runs_on_the_fast_thread_and_returns_results() -> None:
    async with FastPath() as fp:
        main = threading.current_thread()

        async def where() -> threading.Thread:
            await asyncio.sleep(0)
            return threading.current_thread()

        fast = await fp.call(where())
        assert fast is not main and fast.name == "ironlb-fastpath"
        assert await fp.call(lambda: threading.current_thread()) is fast
        assert await fp.call(lambda: fp.on_fast_thread()) and not fp.on_fast_thread()


async def test_errors_come_back_to_the_caller() -> None:
    async with FastPath() as fp:

        def boom() -> None:
            raise ValueError("from the fast path")

        async def aboom() -> None:
            raise KeyError("async")

        with pytest.raises(ValueError, match="from the fast path"):
            await fp.call(boom)
        with pytest.raises(KeyError):
            await fp.call(aboom())
        assert await fp.call(lambda: 42) == 42  # still serving


async def test_post_keeps_order_and_to_main_runs_on_the_main_loop() -> None:
    async with FastPath() as fp:
        seen: list[int] = []
        for i in range(100):
            fp.post(seen.append, i)
        await fp.call(lambda: None)  # queued after the posts
        assert seen == list(range(100))

        main = threading.current_thread()
        got: asyncio.Future[threading.Thread] = asyncio.get_running_loop().create_future()
        report = fp.to_main(lambda: got.set_result(threading.current_thread()))
        fp.post(report)
        assert await asyncio.wait_for(got, 5) is main


async def test_stop_cancels_fast_tasks_and_joins_the_thread() -> None:
    fp = FastPath()
    await fp.start()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    fp.post(lambda: asyncio.get_running_loop().create_task(forever()))
    await fp.call(lambda: None)
    thread = fp._thread
    await fp.stop()
    assert cancelled.is_set()
    assert thread is not None and not thread.is_alive()
    await fp.stop()  # idempotent
    with pytest.raises(RuntimeError):
        await fp.call(lambda: None)
    fp.post(print, "dropped")  # after stop: ignored, no error


async def test_inline_mode_has_the_same_interface_on_one_loop() -> None:
    async with FastPath(threaded=False) as fp:
        assert fp.loop is asyncio.get_running_loop()
        order: list[str] = []
        fp.post(order.append, "post")
        assert await fp.call(lambda: "fn") == "fn"

        async def co() -> str:
            return "co"

        assert await fp.call(co()) == "co"
        fp.to_main(order.append)("back")
        assert order == ["post", "back"]


async def test_the_fast_loop_runs_while_the_main_loop_is_blocked() -> None:
    """The point of it all: a busy main loop (holding the GIL in bursts) does not stop timers on the fast loop."""
    async with FastPath() as fp:
        ticks: list[float] = []

        async def ticker() -> None:
            loop = asyncio.get_running_loop()
            while True:
                ticks.append(loop.time())
                await asyncio.sleep(0.01)

        task = await fp.call(lambda: asyncio.get_running_loop().create_task(ticker()))
        await asyncio.sleep(0.05)
        before = len(ticks)
        deadline = asyncio.get_running_loop().time() + 1.0
        while asyncio.get_running_loop().time() < deadline:  # the main loop never yields for 1 s
            sum(range(1000))
        during = len(ticks) - before
        fp.post(task.cancel)
        assert during >= 3, during  # ~100 expected; a blocked loop would give 0; 3 leaves room for a loaded machine
