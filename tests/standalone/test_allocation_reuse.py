"""ironlb run's decision (ironlb.standalone.decide): the allocation reused across membership changes, and this
node's announcement computed before the other speakers' plans."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ironlb.config import load_files
from ironlb.decide import handed_over
from ironlb.plan import Snapshot, allocate, bgp_plans, cluster_decision, render, snapshot_from
from ironlb.standalone.decide import Allocation, Decision, Early, decide, decide_early, with_member_nodes
from tests.support.objects import (
    bgp_advertisement_yaml,
    documents,
    l2_advertisement_yaml,
    peer_yaml,
    pool_yaml,
    snapshot_of,
)

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ("n1", "n2", "n3")
MIXED = documents(
    pool_yaml("l2", "192.168.1.240-192.168.1.250"),
    pool_yaml("bgp", "10.50.0.0/24"),
    l2_advertisement_yaml("l2", ["l2"]),
    bgp_advertisement_yaml("bgp", ["bgp"]),
    peer_yaml("r", 64513, 64512, "192.168.1.1"),
) + "".join(
    f"""---
apiVersion: v1
kind: Service
metadata: {{name: s{i}, namespace: default, annotations: {{metallb.io/address-pool: {pool}}}}}
spec: {{type: LoadBalancer, ports: [{{port: 80}}]}}
"""
    for i, pool in enumerate(["l2", "bgp", "l2", "bgp", "l2"])
)


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


def reference_decision(snapshot: Snapshot, node: str, alive: tuple[str, ...], has_quorum: bool) -> Decision:
    """What ``decide`` computed in one step before it was split in two (``ironlb plan``'s functions)."""
    snapshot = with_member_nodes(snapshot, MEMBERS)
    allocator, outcomes = allocate(snapshot)
    speakers = [n.name for n in snapshot.nodes]
    cluster = cluster_decision(
        snapshot, outcomes, live=sorted(alive), speakers=speakers, without_l2=() if has_quorum else (node,),
        served_without_slices=True,
    )  # fmt: skip
    l2, nodes = cluster.with_reasons(), cluster.nodes()
    mine = nodes[node]
    plan = render(snapshot, allocator, outcomes, l2, bgp_plans(nodes))
    return Decision(plan, dict(mine.announcement.layer2), l2, mine.bgp, mine.announcement)


@pytest.mark.parametrize("alive", [MEMBERS, ("n1", "n2"), ("n2",)])
@pytest.mark.parametrize("has_quorum", [True, False])
def test_the_early_announcement_and_the_finished_decision_are_the_one_step_decision(
    alive: tuple[str, ...], has_quorum: bool
) -> None:
    """Announcing on this node's own part first changes nothing: the announcement, the hand-overs and the
    finished decision (status plan included) are those of the one-step computation, L2 and BGP Services."""
    mixed = snapshot_of(MIXED)
    for node in MEMBERS:
        early = decide_early(mixed, node=node, members=MEMBERS, alive=alive, has_quorum=has_quorum)
        reference = reference_decision(mixed, node, alive, has_quorum)
        assert early.announcement == reference.announcement
        assert handed_over(node, early.layer2_by_service, early.ingress) == handed_over(
            node, reference.layer2_by_service, reference.ingress
        )
        assert early.finish() == reference


@pytest.mark.parametrize("seed", range(6))
def test_a_membership_change_decided_from_the_previous_decision_is_the_one_step_decision(seed: int) -> None:
    """``decide_early(previous=...)`` (a membership change: the same snapshot, other live members or quorum)
    gives the announcement, hand-overs and finished decision of the one-step computation, whether or not the
    previous one was finished."""
    rng = random.Random(seed)
    mixed = snapshot_of(MIXED)
    allocated = Allocation().of(mixed)
    previous: dict[str, Early | None] = dict.fromkeys(MEMBERS)
    for _ in range(8):
        alive = tuple(sorted({"n1", *rng.sample(MEMBERS, rng.randint(0, 3))}))
        has_quorum = rng.random() < 0.8
        for node in MEMBERS:
            early = decide_early(mixed, node=node, members=MEMBERS, alive=alive, has_quorum=has_quorum,
                                 allocated=allocated, previous=previous[node])  # fmt: skip
            reference = reference_decision(mixed, node, alive, has_quorum)
            assert early.announcement == reference.announcement
            assert handed_over(node, early.layer2_by_service, early.ingress) == handed_over(
                node, reference.layer2_by_service, reference.ingress
            )
            if rng.random() < 0.7:
                assert early.finish() == reference
            previous[node] = early
