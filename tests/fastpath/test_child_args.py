"""The fast process's command line (``ironlb.fastproc.child.parse_args``): what ``ironlb.fastproc.spawn`` passes,
and a clear error with exit status 2 for anything else."""

from __future__ import annotations

import pytest

from ironlb.fastproc.child import parse_args


def test_the_options_spawn_passes() -> None:
    assert parse_args(["--fd", "7", "--log-level", "debug"]) == (7, "debug")
    assert parse_args(["--log-level=warn", "--fd=3"]) == (3, "warn")
    assert parse_args(["--fd", "12"]) == (12, "info")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: --fd"),
        (["--log-level", "info"], "required: --fd"),
        (["--fd"], "--fd: expected one argument"),
        (["--fd", "x"], "invalid int value: 'x'"),
        (["--fd", "-1"], "invalid int value"),
        (["--fd", "3", "--other", "1"], "unrecognized argument: '--other'"),
        (["--fd", "3", "z" * 10_000], "unrecognized argument"),
    ],
)
def test_anything_else_exits_2_naming_it(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("usage: ironlb-fastpath") and len(err) < 400
