"""Hostile files and YAML: each is refused with a ConfigError naming the input and the reason, never a crash or a hang.

The rows of issue 9 that the loader can be driven through without sockets: non-UTF-8, deep nesting, FIFOs,
devices, sockets, directories, oversize files, alias bombs (in a manifest and in a legacy ConfigMap), plus values
PyYAML resolves but cannot build. Both YAML back-ends are exercised (libyaml and pure Python).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ironlb.config import ConfigError, load_files, load_texts, yamlio
from ironlb.config.reading import ReadLimits, parse_size, read_text

POOL = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24]}\n"


def alias_bomb(levels: int = 9, width: int = 10, where: str = "labels") -> str:
    """Each anchor holds ``width`` aliases of the previous one: width**levels strings from a few hundred bytes."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    anchors = "\n".join(f"  {line}" for line in lines)
    return f"apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  {where}:\n  {anchors}\n"


def deep(levels: int, flow: bool) -> str:
    if flow:
        return "x: " + "[" * levels + "]" * levels + "\n"
    return "x:\n" + "- " * levels + "b\n"  # compact block sequences, one level per "- "


@pytest.fixture(params=["libyaml", "python"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "python":
        monkeypatch.setattr(yamlio, "_Loader", yamlio.KubeLoader)
    else:
        assert yamlio.LIBYAML, "PyYAML is installed with libyaml (its wheels bundle it)"
    yield request.param


def error(texts: list[tuple[str, str]]) -> str:
    with pytest.raises(ConfigError) as info:
        load_texts(texts)
    return str(info.value)


@pytest.mark.parametrize("flow", [True, False])
def test_deep_nesting_is_refused(backend: str, flow: bool) -> None:
    message = error([("deep.yaml", deep(5000, flow))])
    assert message.startswith("deep.yaml: invalid YAML:"), message
    assert "nest" in message, message  # ours ("nested deeper than 100") or libyaml's ("maximum nesting depth")


def test_moderate_nesting_is_fine(backend: str) -> None:
    assert load_texts([("ok.yaml", "kind: Thing\n" + deep(60, flow=False))]).others


def test_alias_bomb_is_refused_not_expanded(backend: str) -> None:
    message = error([("bomb.yaml", alias_bomb())])
    assert "bomb.yaml: invalid YAML: aliases would expand to" in message
    assert "refused, not expanded" in message


def test_alias_budget_is_shared_by_the_files_of_one_load(backend: str) -> None:
    one = alias_bomb(levels=5)  # 10**5 = 100k strings: within the budget alone
    assert load_texts([("one.yaml", one)]).services
    message = error([(f"f{i}.yaml", one) for i in range(3)])
    assert "f2.yaml: invalid YAML: aliases would expand" in message


def test_alias_bomb_in_pool_addresses_and_legacy_configmap(backend: str) -> None:
    pool = (
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec:\n"
        "  x0: &x0 [10.0.0.1/32, 10.0.0.1/32, 10.0.0.1/32, 10.0.0.1/32, 10.0.0.1/32, 10.0.0.1/32]\n"
        + "".join(f"  x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 8)}]\n" for i in range(1, 9))
        + "  addresses: *x8\n"
    )
    assert "refused, not expanded" in error([("pool.yaml", pool)])
    data = "a0: &a0 [x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 8)}]\n" for i in range(1, 9)
    )
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}, "data": {"config": data}}
    message = error([("cm.yaml", yaml.safe_dump(configmap))])
    assert "refused, not expanded" in message, message


def test_recursive_alias_is_refused(backend: str) -> None:
    message = error([("loop.yaml", "kind: Thing\na: &a [1, *a]\n")])
    assert message.startswith("loop.yaml: invalid YAML:"), message


def test_values_pyyaml_cannot_build_are_errors(backend: str) -> None:
    for text in ("kind: Thing\nx: 0b_\n", "kind: Thing\nx: 0x_\n", "kind: Thing\n? [a]\n: 1\n"):
        assert error([("v.yaml", text)]).startswith("v.yaml: invalid YAML:")


def test_libyaml_types_scalars_as_kubernetes_does() -> None:
    assert yamlio.load("c: 64512:1\nd: 2024-01-01\nn: 0x10\nf: 1.5\nb: true\nz: null\n") == {
        "c": "64512:1", "d": "2024-01-01", "n": 16, "f": 1.5, "b": True, "z": None,
    }  # fmt: skip


def test_not_utf8_names_the_file_and_the_byte(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"kind: Service\nmetadata: {name: caf\xe9}\n")
    with pytest.raises(ConfigError, match=r"latin1.yaml: refused: not UTF-8 text \(byte 0xe9 at offset 34\)"):
        load_files([bad])


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "x.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            load_files([fifo])
        except BaseException as err:  # handed to the test thread
            outcome.append(err)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=30)  # a deadline, not a timing: a blocking open() would never return
    assert not worker.is_alive(), "reading a FIFO blocked"
    assert isinstance(outcome[0], ConfigError)
    assert str(outcome[0]) == f"{fifo}: refused: a FIFO, not a regular file"


def test_devices_sockets_and_directories_are_refused(tmp_path: Path) -> None:
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    sock_path = tmp_path / "s.yaml"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        cases = {zero: "a character device", sock_path: "a socket", tmp_path: "a directory"}
        for path, kind in cases.items():
            with pytest.raises(ConfigError) as info:
                load_files([path])
            assert str(info.value) == f"{path}: refused: {kind}, not a regular file"
    finally:
        sock.close()


def test_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_text(POOL)
    link = tmp_path / "link.yaml"
    link.symlink_to("real.yaml")
    assert [p.name for p in load_files([link]).pools] == ["p"]


def test_size_limits_per_file_and_in_total(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.yaml")
        files[-1].write_text(POOL + "#" * 1000 + "\n")
    size = files[0].stat().st_size
    with pytest.raises(ConfigError) as info:
        load_files(files, limits=ReadLimits(file_bytes=size - 1))
    assert str(info.value).splitlines() == [
        f"{f}: refused: {size} bytes, over the limit of {size - 1} bytes" for f in files
    ]
    with pytest.raises(ConfigError) as info:
        load_files(files, limits=ReadLimits(total_bytes=2 * size + 1))
    assert str(info.value) == f"{files[2]}: refused: the files read together exceed {2 * size + 1} bytes"
    assert len(load_files(files, limits=ReadLimits(file_bytes=size, total_bytes=3 * size)).pools) == 3
    assert read_text(files[0]) == files[0].read_text()


def test_default_limits_are_8_and_64_mib(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as out:
        out.truncate(8 * 1024 * 1024 + 1)
    with pytest.raises(ConfigError, match=r"big.yaml: refused: 8388609 bytes, over the limit of 8 MiB"):
        load_files([big])
    assert ReadLimits().total_bytes == parse_size("64Mi")


def test_parse_size() -> None:
    assert [parse_size(s) for s in ("100", "8Mi", "8MiB", "2k", "1Gi")] == [100, 8 << 20, 8 << 20, 2000, 1 << 30]
    for bad in ("", "-5", "0", "8 parsecs", "1.5Mi"):
        with pytest.raises(ValueError):
            parse_size(bad)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("latin1.yaml", b"kind: Service\nmetadata: {name: caf\xe9}\n", "refused: not UTF-8 text"),
        ("deep.yaml", deep(5000, flow=True).encode(), "invalid YAML"),
        ("bomb.yaml", alias_bomb().encode(), "refused, not expanded"),
    ],
)
def test_offline_commands_print_the_error_without_traceback(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    for command in (["validate", str(path)], ["plan", str(path)], ["convert", str(path)]):
        r = subprocess.run(
            [sys.executable, "-m", "ironlb", *command], capture_output=True, text=True, timeout=120, check=False
        )
        assert r.returncode == 1, (command, r.stderr)
        assert f"{path}: " in r.stderr and message in r.stderr, (command, r.stderr)
        assert "Traceback" not in r.stderr, (command, r.stderr)


def test_an_exception_no_check_foresaw_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from ironlb.config import build, load_objects, loader

    build_module = importlib.import_module("ironlb.config.build")  # the attribute is the function of that name

    def boom(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    pool = yaml.safe_load(POOL)
    monkeypatch.setattr(loader, "parse_resource", boom)
    with pytest.raises(ConfigError, match=r"^object 1: cannot read this object: RecursionError"):
        load_objects([pool])
    monkeypatch.undo()
    resources = load_objects([pool])
    monkeypatch.setattr(build_module._Builder, "pools", boom)
    with pytest.raises(ConfigError, match=r"cannot validate: RecursionError: maximum recursion depth exceeded"):
        build(resources)


def test_a_larger_file_limit_also_lifts_the_text_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(POOL + "#" * (yamlio.MAX_TEXT_CHARS + 10) + "\n")
    with pytest.raises(ConfigError, match="over the limit of 8 MiB"):
        load_files([big])
    assert [p.name for p in load_files([big], limits=ReadLimits(file_bytes=16 << 20)).pools] == ["p"]
    with pytest.raises(ConfigError, match="characters, over the limit"):
        load_texts([("t.yaml", POOL + "#" * (yamlio.MAX_TEXT_CHARS + 10))])


def test_the_plain_tree_shortcut_refuses_exactly_what_the_full_check_refuses() -> None:
    """``check`` passes a plain tree (no alias) after one cheap visit; depth at the limit passes, one more level is
    refused with the full check's words (where the collection that holds too many levels starts), and an alias takes the
    full check (its expansion counts against the budget)."""
    from ironlb.config.yamlio import Budget, YAMLLimitError, load_all

    def nested(levels: int) -> str:
        return "a: " + "[" * (levels - 1) + "1" + "]" * (levels - 1) + "\n"

    assert load_all(nested(8), Budget(max_depth=8))
    with pytest.raises(YAMLLimitError, match=r"^nested deeper than 8 levels \(line 1, column 1\)$"):
        load_all(nested(9), Budget(max_depth=8))
    budget = Budget(alias_nodes=10)
    load_all("a: &x [1, 2, 3]\nb: *x\nc: *x\n", budget)
    assert budget.alias_nodes == 10 - 8  # each alias stands for the list and its 3 items
