from hypothesis import given
from hypothesis import strategies as st

from ironlb.ipam.intervals import IntervalSet


def test_runs_merge_and_split() -> None:
    s = IntervalSet()
    for x in (5, 7, 6, 10):
        assert s.add(x)
    assert not s.add(6)
    assert s.runs == [(5, 7), (10, 10)]
    assert s.discard(6)
    assert s.runs == [(5, 5), (7, 7), (10, 10)]
    assert not s.discard(6)
    assert len(s) == 3
    assert s.first_absent(5, 20) == 6
    assert s.first_absent(7, 7) is None
    assert s.count_in(6, 10) == 2


def test_first_absent_is_fast_on_huge_ranges() -> None:
    s = IntervalSet()
    base = 2**127
    for i in range(1000):
        s.add(base + i)
    assert s.first_absent(base, base + 2**64 - 1) == base + 1000
    assert s.runs == [(base, base + 999)]


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 200)), max_size=300), st.integers(0, 200), st.integers(0, 200))
def test_matches_a_plain_set(ops: list[tuple[bool, int]], lo: int, hi: int) -> None:
    s = IntervalSet()
    ref: set[int] = set()
    for add, x in ops:
        if add:
            assert s.add(x) == (x not in ref)
            ref.add(x)
        else:
            assert s.discard(x) == (x in ref)
            ref.discard(x)
    assert sorted(s) == sorted(ref)
    assert len(s) == len(ref)
    runs = s.runs
    assert all(a[1] + 1 < b[0] for a, b in zip(runs, runs[1:], strict=False))
    expected = next((x for x in range(lo, hi + 1) if x not in ref), None)
    assert s.first_absent(lo, hi) == expected
    assert s.count_in(lo, hi) == sum(1 for x in ref if lo <= x <= hi)
