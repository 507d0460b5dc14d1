"""The announced set in the log: whole when small, its size and the changes when large."""

from __future__ import annotations

from ironlb.announce.announcer import _change_text


def test_a_small_set_is_logged_whole_a_large_one_by_its_changes() -> None:
    assert _change_text({}, {"10.0.0.2": (), "10.0.0.1": ("eth0",)}) == "['10.0.0.1', '10.0.0.2']"
    assert _change_text({"10.0.0.1": ()}, {}) == "nothing"
    before = {f"10.0.{i // 250}.{i % 250}": () for i in range(10000)}
    after = dict(before)
    del after["10.0.0.3"]
    after["10.9.0.1"] = ()
    assert _change_text(before, after) == "10000 IPs; +1: 10.9.0.1; -1: 10.0.0.3"
    text = _change_text({}, before)
    assert text.startswith("10000 IPs; +10000: ") and text.endswith(" and 9980 more") and len(text) < 400
