"""The runner's reading of the state directory, driven without sockets: a refused or broken input is a
configuration error in ``config_error`` (the status file's ``config.error``), the last valid configuration keeps
running, and removing the input recovers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ironlb.standalone import runner as runner_module
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
