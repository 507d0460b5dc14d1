"""A recompute after a membership change reuses the allocation of the same snapshot (ironlb.standalone.decide)."""

from __future__ import annotations

from pathlib import Path

from ironlb.config import load_files
from ironlb.plan import snapshot_from
from ironlb.standalone.decide import Allocation, decide

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ("n1", "n2", "n3")


def test_the_allocation_is_reused_for_the_same_snapshot_and_the_decision_is_unchanged() -> None:
    files = [ROOT / "examples" / "metallb-config.yaml", ROOT / "examples" / "my-service.yaml"]
    snapshot, _ = snapshot_from(load_files(files))
    cache = Allocation()
    first = cache.of(snapshot)
    assert cache.of(snapshot) is first
    assert cache.of(snapshot, "other-class") is not first  # another class: computed again
    for alive in (MEMBERS, ("n1", "n2"), ("n2",)):
        reused = decide(snapshot, node="n2", members=MEMBERS, alive=alive, allocated=cache.of(snapshot))
        fresh = decide(snapshot, node="n2", members=MEMBERS, alive=alive)
        assert reused == fresh
    again, _ = snapshot_from(load_files(files))  # an equal but new snapshot (the directory was read again)
    assert cache.of(again) is not first
