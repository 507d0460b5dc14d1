"""wait_until: "not yet" errors are retried, others are not, and a timeout names what and the last error."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from tests.support.waits import NOT_LISTENING, WaitTimeout, only_404, wait_until, wait_until_async


class ApiError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def test_retries_the_listed_errors_until_a_truthy_value() -> None:
    calls = iter([ConnectionRefusedError(), KeyError("status"), 0, "up"])

    def fn() -> object:
        item = next(calls)
        if isinstance(item, BaseException):
            raise item
        return item

    assert wait_until(fn, 5, "the server", retry=(*NOT_LISTENING, KeyError), interval=0) == "up"


def test_other_errors_propagate_at_once() -> None:
    def fn() -> bool:
        raise ValueError("a bug, not a start-up")

    with pytest.raises(ValueError, match="a bug"):
        wait_until(fn, 5, "x", retry=(KeyError,))


def test_retry_if_narrows_the_type() -> None:
    seen = iter([ApiError(404), ApiError(500)])

    def fn() -> bool:
        raise next(seen)

    with pytest.raises(ApiError, match="500"):
        wait_until(fn, 5, "the object", retry=(ApiError,), retry_if=only_404, interval=0)


def test_timeout_names_what_and_the_last_error() -> None:
    def fn() -> str:
        raise subprocess.CalledProcessError(1, ["vtysh"], stderr="bgpd is not running")

    with pytest.raises(WaitTimeout, match=r"waiting for the router's routes; last error: CalledProcessError") as err:
        wait_until(fn, 0.05, "the router's routes", retry=(subprocess.CalledProcessError,), interval=0.01)
    assert isinstance(err.value.error, subprocess.CalledProcessError)


def test_timeout_names_the_last_value() -> None:
    with pytest.raises(WaitTimeout, match=r"waiting for two announcers; last value: \[\]"):
        wait_until(lambda: [], 0.03, "two announcers", interval=0.01)


async def test_async_variant_awaits_and_retries() -> None:
    state = {"n": 0}

    async def fn() -> int:
        state["n"] += 1
        if state["n"] < 3:
            raise ConnectionResetError()
        return state["n"]

    assert await wait_until_async(fn, 5, "n", retry=NOT_LISTENING, interval=0) == 3
    with pytest.raises(WaitTimeout, match="never"):
        await wait_until_async(lambda: False, 0.02, "never")
    assert asyncio.get_running_loop().is_running()
