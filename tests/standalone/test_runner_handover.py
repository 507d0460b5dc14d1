"""Which IPs a planned stop of ``ironlb run`` hands over (answers until a successor claims them)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ironlb.membership.quorum import successors_have_quorum
from ironlb.membership.service import MembershipView
from ironlb.standalone.decide import decide
from ironlb.standalone.runner import Runner, RunOptions

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = {"n1": ("192.0.2.1", 7946), "n2": ("192.0.2.2", 7946), "n3": ("192.0.2.3", 7946)}


class StubMembership:
    def __init__(self, node: str, alive: set[str]) -> None:
        self.view = MembershipView(frozenset(alive), True, True, {k: v for k, v in MEMBERS.items() if k != node})


def runner_owning_the_seed_ip(tmp_path: Path, alive: set[str]) -> tuple[Runner, str]:
    state = tmp_path / "state"
    state.mkdir()
    for name in ("metallb-config.yaml", "my-service.yaml"):
        (state / name).write_text((ROOT / "examples" / name).read_text())
    probe = Runner(RunOptions(state_dir=state, node="n1", members=MEMBERS, insecure_no_secret=True,
                              fastpath_thread=False, data_dir=None))  # fmt: skip
    asyncio.run(probe._load())
    assert probe.snapshot is not None
    first = decide(probe.snapshot, node="n1", members=MEMBERS, alive=alive)
    owner = first.layer2_by_service["default/my-service"].node
    assert owner is not None
    r = Runner(RunOptions(state_dir=state, node=owner, members=MEMBERS, insecure_no_secret=True,
                          fastpath_thread=False, data_dir=None))  # fmt: skip
    r.snapshot = probe.snapshot
    r.decision = decide(probe.snapshot, node=owner, members=MEMBERS, alive=alive)
    r.membership = StubMembership(owner, alive)  # type: ignore[assignment]
    return r, owner


def test_a_planned_stop_hands_over_what_a_live_successor_takes(tmp_path: Path) -> None:
    r, _ = runner_owning_the_seed_ip(tmp_path, set(MEMBERS))
    assert r._hand_over(leaving=True) == {"192.168.1.240"}


def test_a_planned_stop_that_leaves_the_others_without_quorum_hands_over_nothing(tmp_path: Path) -> None:
    """Two of three alive: once this node has left the last one has no quorum and announces nothing, so there is
    no successor's claim to wait for (the stop would wait out the whole hand-over timeout)."""
    r, owner = runner_owning_the_seed_ip(tmp_path, {"n1", "n2"})
    assert owner in ("n1", "n2")
    assert r._alive()[1]  # this node still has quorum: it announces until it stops
    assert r._hand_over(leaving=True) == frozenset()


def test_successors_have_quorum() -> None:
    assert successors_have_quorum("auto", {"a", "b", "c"}, 2, "a")  # 2 of 3 left
    assert not successors_have_quorum("auto", {"a", "b"}, 2, "a")  # 1 of 3 left
    assert successors_have_quorum("auto", {"a", "b"}, 1, "a")  # two members: no quorum rule
    assert successors_have_quorum("off", {"a"}, 4, "a")
    assert not successors_have_quorum("on", {"a", "b"}, 1, "a")
