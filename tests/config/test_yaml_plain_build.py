"""The one-visit build of plain YAML trees (``yamlio._build_plain``) gives exactly what PyYAML's constructor gives
after the full check, values and types alike, and everything else still takes that full path (issue 16)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb.config import yamlio

TOKENS = [
    "0b101", "0x1F", "017", "08", "1_000", "1e5", "1.5e3", "1.", ".5", ".inf", "-.inf", ".nan", "~", "null", "Null",
    "NULL", "yes", "no", "on", "off", "true", "False", "TRUE", "=", "<<", "64512:1", "1:30", "2024-01-01", "+1", "-0",
    "0o17", "0b_", "0x_", "-0x10", "+0b1", "1_0.5", "abc", "'quoted'", '"dq\\tx"', "''", "0.", "-1.5E-3", "!!int '17'",
    "!!str 17", "!!float 1", "!!bool yes", "!!null ''", "!!int 1:30", "!!int x", "!!binary aGk=", "!custom x", "-",
]  # fmt: skip

SNIPPETS = [
    "a: &x {b: 1}\nc: {<<: *x, d: 2}\n",
    "a: &x [1, 2]\nb: *x\n",
    "a: &s foo\nb: *s\n",
    "= : 1\n",
    "? [1, 2]\n: x\n",
    "? {a: 1}\n: x\n",
    "!!set {a, b}\n",
    "!!omap [a: 1, b: 2]\n",
    "a: !!timestamp 2024-01-01\n",
    "--- 1\n--- [a]\n---\n...\n--- {a: b}\n",
    "a: 1\na: 2\nb: 3\na: 4\n",
    "x: |\n  text\n  more\ny: >-\n  folded\n  line\n",
    "[" * 7 + "]" * 7,
    "{a: {b: {c: [1, {d: e}]}}}",
    "",
    "# only a comment\n",
    "a: [1, 2, {b: [3, {c: 0b_}]}]\nz: 0x_\n",
]


@pytest.fixture(params=["libyaml", "python"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "python":
        monkeypatch.setattr(yamlio, "_Loader", yamlio.KubeLoader)
    yield request.param


def reference(text: str, budget: yamlio.Budget) -> list[Any]:
    """What ``load_all`` did before the one-visit build: the full check, then PyYAML's constructor."""
    loader = yamlio._Loader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yamlio.check(node, budget)
                docs.append(loader.construct_document(node))
    except yaml.YAMLError:
        raise
    except Exception as err:
        raise yaml.YAMLError(f"cannot read a value: {type(err).__name__}: {err}") from None
    finally:
        loader.dispose()
    return docs


def outcome(load: Any, text: str, max_depth: int = yamlio.MAX_DEPTH) -> tuple[str, str, int]:
    """repr of the result (types show: True is not 1, 1.0 is not 1) or of the error, and the budget left."""
    budget = yamlio.Budget(alias_nodes=1000, max_depth=max_depth)
    try:
        return "ok", repr(load(text, budget)), budget.alias_nodes
    except yaml.YAMLError as err:
        return type(err).__name__, str(err), budget.alias_nodes


def same(text: str, max_depth: int = yamlio.MAX_DEPTH) -> None:
    assert outcome(yamlio.load_all, text, max_depth) == outcome(reference, text, max_depth), text


@pytest.mark.parametrize("token", TOKENS)
def test_every_scalar_form_builds_as_pyyaml_builds_it(backend: str, token: str) -> None:
    for text in (f"k: {token}\n", f"- {token}\n", f"[{token}, x]\n", f"{{{token}: v}}\n", f"{token}: v\n", token):
        same(text)


@pytest.mark.parametrize("text", SNIPPETS)
def test_aliases_merge_keys_tags_and_streams_build_as_before(backend: str, text: str) -> None:
    same(text)


def test_the_depth_limit_is_the_full_checks(backend: str) -> None:
    for levels in (1, 2, 5, 6, 7):
        same("a: " + "[" * levels + "1" + "]" * levels + "\n", max_depth=6)
        same("a:\n" + "- " * levels + "b\n", max_depth=6)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8), st.sampled_from(TOKENS)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=5), st.integers()),
                                                                         inner, max_size=4)),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(values, st.booleans())
def test_dumped_values_build_as_before(value: Any, flow: bool) -> None:
    same(yaml.safe_dump(value, default_flow_style=flow))
    same(yaml.safe_dump_all([value, value], default_flow_style=flow))


def test_a_plain_manifest_skips_the_full_check_and_an_alias_takes_it(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[object] = []
    monkeypatch.setattr(yamlio, "check", lambda node, budget: checked.append(node))
    manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: s, labels: {a: b}}\nspec: {ports: [{port: 80}]}\n"
    assert yamlio.load_all(manifest)[0]["spec"] == {"ports": [{"port": 80}]}
    assert checked == []
    assert yamlio.load_all("a: &x [1]\nb: *x\n") == [{"a": [1], "b": [1]}]
    assert len(checked) == 1
