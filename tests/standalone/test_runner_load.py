"""The runner's reading of the state directory, driven without sockets: a refused or broken input is a
configuration error in ``config_error`` (the status file's ``config.error``), the last valid configuration keeps
running, and removing the input recovers."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from ironlb.decide import Announcement
from ironlb.standalone import decide as standalone_decide
from ironlb.standalone import runner as runner_module
from ironlb.standalone.decide import Decision, Early
from ironlb.standalone.runner import Runner, RunOptions

ROOT = Path(__file__).resolve().parents[2]


def make_runner(state: Path) -> Runner:
    return Runner(RunOptions(state_dir=state, node="n1"))


def pools(r: Runner) -> list[str]:
    assert r.snapshot is not None
    return [p.name for p in r.snapshot.config.pools]


def test_refused_files_keep_the_last_valid_configuration(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.yaml").write_text((ROOT / "examples" / "metallb-config.yaml").read_text())
    r = make_runner(state)

    async def scenario() -> None:
        await r._load()
        assert r.config_error is None and pools(r) == ["default"]
        hostile = {
            "fifo.yaml": lambda p: os.mkfifo(p),
            "zero.yaml": lambda p: p.symlink_to("/dev/zero"),
            "latin1.yaml": lambda p: p.write_bytes(b"kind: Service\nmetadata: {name: caf\xe9}\n"),
            "deep.yaml": lambda p: p.write_text("x: " + "[" * 5000 + "]" * 5000 + "\n"),
        }
        for name, make in hostile.items():
            path = state / name
            make(path)
            await r._load()
            assert r.config_error is not None and r.config_error.startswith(f"{path}: "), r.config_error
            assert pools(r) == ["default"]
            path.unlink()
            await r._load()
            assert r.config_error is None, r.config_error

    asyncio.run(scenario())


def test_an_unexpected_exception_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    state.mkdir()
    r = make_runner(state)

    def broken(*args: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(runner_module.statedir, "load", broken)
    asyncio.run(r._load())
    assert r.config_error == f"{state}: RecursionError: maximum recursion depth exceeded"


def test_a_restart_with_a_refused_file_runs_the_saved_configuration(tmp_path: Path) -> None:
    state, data = tmp_path / "state", tmp_path / "data"
    state.mkdir()
    (state / "config.yaml").write_text((ROOT / "examples" / "metallb-config.yaml").read_text())
    first = Runner(RunOptions(state_dir=state, node="n1", data_dir=data))
    asyncio.run(first._load())
    assert first.config_error is None and pools(first) == ["default"]
    assert (data / "last-valid.json").stat().st_mode & 0o777 == 0o600
    fifo = state / "fifo.yaml"
    os.mkfifo(fifo)

    restarted = Runner(RunOptions(state_dir=state, node="n1", data_dir=data))
    asyncio.run(restarted._load())
    assert pools(restarted) == ["default"]
    error = restarted.config_error
    assert error is not None and error.startswith(f"{fifo}: refused: a FIFO"), error
    assert "running the last valid configuration, saved at " in error and str(data / "last-valid.json") in error

    without_saved = Runner(RunOptions(state_dir=state, node="n1", data_dir=tmp_path / "empty"))
    asyncio.run(without_saved._load())
    assert without_saved.snapshot is None and without_saved.config_error is not None
    assert without_saved.config_error.startswith(f"{fifo}: refused: a FIFO")

    async def recover() -> None:
        fifo.unlink()
        await restarted._load()
        assert restarted.config_error is None and pools(restarted) == ["default"]

    asyncio.run(recover())


def test_a_restart_with_an_invalid_configuration_keeps_the_current_services(tmp_path: Path) -> None:
    state, data = tmp_path / "state", tmp_path / "data"
    state.mkdir()
    (state / "config.yaml").write_text((ROOT / "examples" / "metallb-config.yaml").read_text())
    asyncio.run(Runner(RunOptions(state_dir=state, node="n1", data_dir=data))._load())
    (state / "bad.yaml").write_text(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bad, namespace: metallb-system}\n"
        "spec: {addresses: [not-an-address]}\n"
    )
    (state / "svc.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n"
        "spec: {type: LoadBalancer, ports: [{port: 80}]}\n"
    )
    restarted = Runner(RunOptions(state_dir=state, node="n1", data_dir=data))
    asyncio.run(restarted._load())
    assert pools(restarted) == ["default"]
    assert restarted.snapshot is not None
    assert [s.name for s in restarted.snapshot.services] == ["web"]
    assert restarted.config_error is not None and restarted.config_error.startswith("IPAddressPool \"bad\"")


def test_too_many_files_is_a_configuration_error_naming_the_limit(tmp_path: Path) -> None:
    from ironlb.config.reading import ReadLimits
    from ironlb.standalone import statedir

    state = tmp_path / "state"
    state.mkdir()
    (state / "config.yaml").write_text((ROOT / "examples" / "metallb-config.yaml").read_text())
    r = Runner(RunOptions(state_dir=state, node="n1", read_limits=ReadLimits(files=5)))

    async def scenario() -> None:
        await r._load()
        assert r.config_error is None
        sub = state / "flood"
        sub.mkdir()
        for i in range(5):
            (sub / f"{i}.txt").write_text("")
        before = statedir.signature(state, 5)
        await r._load()
        assert r.config_error == f"{state}: refused: more than 5 entries in the state directory (limit: --max-files 5)"
        assert pools(r) == ["default"]
        (sub / "0.txt").unlink()
        (sub / "1.txt").unlink()  # 5 entries: config.yaml, flood and 3 in flood
        assert statedir.signature(state, 5) != before
        await r._load()
        assert r.config_error is None

    asyncio.run(scenario())


def test_a_recompute_queued_meanwhile_announces_before_the_status_is_planned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A membership change that comes while a recompute is running is announced before that recompute plans the
    other speakers and the status file; only the latest announcement is then finished (the status is its)."""
    state = tmp_path / "state"
    state.mkdir()
    for name in ("metallb-config.yaml", "my-service.yaml"):
        (state / name).write_text((ROOT / "examples" / name).read_text())
    r = make_runner(state)
    events: list[str] = []
    real = standalone_decide.decide_early

    def decide_early(*args: Any, **kwargs: Any) -> Early:
        early = real(*args, **kwargs)

        def finish() -> Decision:
            events.append("finish")
            return early.finish()

        return dataclasses.replace(early, _finish=finish)

    async def apply(announcement: Announcement, hand_over: object) -> None:
        events.append(f"apply {len(announcement.layer2)}")
        await asyncio.sleep(0)  # the fast path's round trip

    monkeypatch.setattr(runner_module, "decide_early", decide_early)
    monkeypatch.setattr(r.announcer, "apply", apply)

    async def scenario() -> None:
        await r._load()
        await asyncio.gather(r._recompute("start"), r._recompute("membership"))
        assert events == ["apply 1", "apply 1", "finish"]
        assert r.decision is not None and list(r.decision.layer2) == ["192.168.1.240"]
        await r._recompute("membership")  # alone: finished at once
        assert events[3:] == ["apply 1", "finish"]

    asyncio.run(scenario())
