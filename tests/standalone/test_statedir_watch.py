"""The state directory watch: woken by inotify (no rescan while nothing changes), rescans as the fallback.

The fallback period is set to a minute where a test shows that inotify alone saw a change: the waits below give
up long before a fallback rescan could have seen it.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ironlb.standalone import statedir
from ironlb.standalone.inotify import Notifier
from tests.support.waits import wait_until_async

NEVER = 60.0


class Watch:
    def __init__(self) -> None:
        self.changes = 0
        self.scans = 0

    async def on_change(self) -> None:
        self.changes += 1

    async def changed(self, since: int, what: str) -> None:
        await wait_until_async(lambda: self.changes > since, 5.0, what)


@asynccontextmanager
async def watching(root: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: float) -> AsyncIterator[Watch]:
    watch = Watch()
    real_scan = statedir.scan

    def counted(*args: object) -> tuple[statedir.Signature, list[Path]]:
        watch.scans += 1
        return real_scan(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(statedir, "scan", counted)
    stop = asyncio.Event()
    task = asyncio.create_task(statedir.watch(root, watch.on_change, stop=stop, **kwargs))  # type: ignore[arg-type]
    await wait_until_async(lambda: watch.scans >= 1, 5.0, "the first scan")
    await asyncio.sleep(0.05)  # the watches are set right after it
    try:
        yield watch
    finally:
        stop.set()
        await task


def write(path: Path, text: str) -> None:
    """As the lab and config tools do: a temporary file renamed over the manifest."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def test_idle_means_no_rescans_and_every_kind_of_change_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if Notifier.open() is None:
        pytest.skip("no inotify here")
    write(tmp_path / "a.yaml", "a: 1\n")
    async with watching(tmp_path, monkeypatch, fallback=NEVER) as w:
        await asyncio.sleep(0.5)
        assert (w.scans, w.changes) == (1, 0)  # 20 polls a second before

        write(tmp_path / "a.yaml", "a: 2\n")
        await w.changed(0, "a rewrite by rename")

        n = w.changes
        with (tmp_path / "a.yaml").open("a") as f:
            f.write("b: 3\n")
        await w.changed(n, "an append in place")

        n = w.changes
        (tmp_path / "sub").mkdir()
        write(tmp_path / "sub" / "b.yaml", "b: 1\n")
        await w.changed(n, "a manifest in a new directory")

        n = w.changes
        write(tmp_path / "sub" / "b.yaml", "b: 2\n")
        await w.changed(n, "a rewrite in the new directory (now watched)")

        n = w.changes
        shutil.rmtree(tmp_path / "sub")
        await w.changed(n, "a directory removed")
        (tmp_path / "sub").mkdir()
        await asyncio.sleep(0.2)  # its creation rescanned and watched (no manifest yet: no change)
        n = w.changes
        write(tmp_path / "sub" / "c.yaml", "c: 1\n")
        await w.changed(n, "a manifest in a directory made again under the same name")

        n = w.changes
        (tmp_path / "a.yaml").unlink()
        await w.changed(n, "a removal")

        n, scans = w.changes, w.scans
        (tmp_path / "notes.txt").write_text("not a manifest")
        await wait_until_async(lambda: w.scans > scans, 5.0, "a rescan for any entry")
        await asyncio.sleep(0.2)
        assert w.changes == n  # looked, and nothing that matters changed


async def test_a_burst_of_writes_is_one_rescan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if Notifier.open() is None:
        pytest.skip("no inotify here")
    async with watching(tmp_path, monkeypatch, fallback=NEVER, interval=2.0) as w:
        for i in range(200):  # well within the 2 s a burst is given, even on a loaded machine
            write(tmp_path / f"s{i}.yaml", f"i: {i}\n")
        await w.changed(0, "the burst")
        await asyncio.sleep(2.5)
        assert w.scans <= 1 + 2  # the first, the burst's and at most one more (writes straddling its rescan)


async def test_what_inotify_cannot_see_is_found_by_the_fallback_rescan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest that is a symlink to a file outside the tree (inotify watches the tree only)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "real.yaml"
    target.write_text("a: 1\n")
    root = tmp_path / "state"
    root.mkdir()
    (root / "a.yaml").symlink_to(target)
    async with watching(root, monkeypatch, fallback=0.2) as w:
        write(target, "a: 22\n")
        await w.changed(0, "the symlink's target rewritten outside the tree")


async def test_without_inotify_the_directory_is_polled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statedir.Notifier, "open", classmethod(lambda cls: None))
    async with watching(tmp_path, monkeypatch, fallback=NEVER, interval=0.05) as w:
        write(tmp_path / "a.yaml", "a: 1\n")
        await w.changed(0, "a new manifest, polled")


async def test_a_directory_over_the_limit_watches_only_its_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile trees: the directories watched are those scanned, bounded by ``max_entries``."""
    if Notifier.open() is None:
        pytest.skip("no inotify here")
    for i in range(20):
        (tmp_path / f"d{i}").mkdir()
    opened: list[Notifier] = []
    real_open = Notifier.open

    def recording(cls: type[Notifier]) -> Notifier | None:
        n = real_open()
        if n is not None:
            opened.append(n)
        return n

    monkeypatch.setattr(statedir.Notifier, "open", classmethod(recording))
    async with watching(tmp_path, monkeypatch, fallback=NEVER, max_entries=5) as w:
        assert opened and opened[0].watched == frozenset({tmp_path})
        shutil.rmtree(tmp_path / "d0")
        for i in range(1, 17):
            (tmp_path / f"d{i}").rmdir()
        write(tmp_path / "a.yaml", "a: 1\n")  # 4 entries now: within the limit again
        await w.changed(0, "the tree back within the limit")
        await wait_until_async(lambda: len(opened[0].watched) == 4, 5.0, "the three directories left watched")


async def test_a_costly_tree_is_rescanned_less_often(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback rescans take at most 1 % of the time: a rescan of 50 ms puts them 5 s apart, not 0.2 s."""
    if Notifier.open() is None:
        pytest.skip("no inotify here")
    real_scan = statedir.scan

    def slow(*args: object) -> tuple[statedir.Signature, list[Path]]:
        time.sleep(0.05)
        return real_scan(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(statedir, "scan", slow)
    async with watching(tmp_path, monkeypatch, fallback=0.2) as w:
        await asyncio.sleep(1.0)
        assert w.scans == 1
        write(tmp_path / "a.yaml", "a: 1\n")
        await w.changed(0, "a change, seen at once all the same")


def test_a_drain_that_never_runs_dry_stops_after_a_bounded_read() -> None:
    """A writer that never stops (here /dev/zero, always readable) cannot keep the watch in its drain."""
    fd = os.open("/dev/zero", os.O_RDONLY)
    notifier = Notifier(fd, ctypes.CDLL(None))
    result: list[bool] = []
    drainer = threading.Thread(target=lambda: result.append(notifier.drain()), daemon=True)
    drainer.start()
    drainer.join(30.0)  # on its own thread: a regression fails the test instead of hanging it
    try:
        assert result == [True], "the drain did not return"
    finally:
        if not drainer.is_alive():
            notifier.close()
