"""The fast process spawned first thing by ``ironlb run`` / ``ironlb speaker`` (ironlb.fastproc.spawn)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironlb import cli
from ironlb.fastproc import spawn as spawn_module
from ironlb.fastproc.spawn import Spawned


@pytest.mark.parametrize("argv", [
    ["run", "--state", "MISSING", "--node", "n1"],  # refused: --state is not a directory
    ["run", "--state", "STATE", "--node", "n1", "--members", "n1=127.0.0.1,n2=127.0.0.2"],  # refused: no secret
])  # fmt: skip
def test_a_refused_command_line_leaves_no_fast_process_behind(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "state").mkdir()
    argv = [a.replace("MISSING", str(tmp_path / "missing")).replace("STATE", str(tmp_path / "state")) for a in argv]
    spawned: list[Spawned] = []
    real_spawn = spawn_module.spawn

    def recording_spawn(log_level: str) -> Spawned:
        spawned.append(real_spawn(log_level))
        return spawned[-1]

    monkeypatch.setattr(spawn_module, "spawn", recording_spawn)
    assert cli.main(argv) == 2
    assert len(spawned) == 1, "spawned before the arguments were checked"
    assert spawned[0].proc.poll() is not None, "the fast process outlived the refused command"
    assert spawned[0].sock.fileno() == -1


def test_no_fast_process_with_the_fast_path_on_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_spawn(log_level: str) -> Spawned:
        raise AssertionError("spawned a fast process for --fastpath thread")

    monkeypatch.setattr(spawn_module, "spawn", no_spawn)
    assert cli.main(["run", "--state", str(tmp_path / "missing"), "--node", "n1", "--fastpath", "thread"]) == 2
