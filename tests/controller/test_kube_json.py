"""The Kubernetes client's JSON decoding (``ironlb.kube.client.loads``: msgspec's decoder, ``json.loads`` for what
it refuses) gives exactly ``json.loads``'s result or error, for any input."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb.kube.client import _decode, loads

EDGES = [
    b"-0", b"-0.0", b"1E+2", b"1e-400", b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity", b"[NaN]",
    b"123456789012345678901234567890", b"123456789012345678901234567890.5", b"9" * 5000, b'"\\u0000"',
    b'"\\uDFFF"', b'"\\ud800"', b'"\\ud83d\\ude00"', b'"\xc3\xa9"', b'"\xff"', b"\xef\xbb\xbf{}",
    '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-32-le"), b' {"a": 1} ', b'{"a":1,"a":2}', b'"a\x01b"',
    b'["\t"]', b"[1,]", b'{"a":1,}', b"01", b"1.", b".5", b"+1", b"tru", b"", b"\x00", b"{} x", b"[" * 100_000,
    b"[" * 500 + b"]" * 500, "π".encode(), '{"k": "ü"}', '"\ud800"',
]  # fmt: skip


def _outcome(fn: Any, data: bytes | str) -> tuple[str, Any]:
    try:
        return "ok", repr(fn(data))  # repr: -0.0 and 0.0, NaN, and the types told apart
    except RecursionError:
        return "RecursionError", None
    except ValueError as err:
        return type(err).__name__, str(err)


@pytest.mark.parametrize("data", EDGES, ids=range(len(EDGES)))
def test_loads_is_json_loads_on_every_edge(data: bytes | str) -> None:
    assert _outcome(loads, data) == _outcome(json.loads, data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(JSON, st.booleans())
def test_loads_equals_json_loads(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    for data in (text, text.encode()):
        assert repr(loads(data)) == repr(json.loads(data))


def test_infinite_floats_and_nan_as_json_writes_them() -> None:
    text = json.dumps([math.inf, -math.inf, math.nan])
    assert repr(loads(text)) == repr(json.loads(text))


def test_a_body_that_is_not_json_is_kept_as_text() -> None:
    assert _decode(b"") == {}
    assert _decode(b"<html>bad gateway</html>") == "<html>bad gateway</html>"
    assert _decode(b'{"kind": "Status", "code": 404}') == {"kind": "Status", "code": 404}
