"""A member that starts after a restart hold's LEAVE was sent: its membership learns the hold from its peers (a HOLDS
relay), so its decision leaves the held node's IPs where they are, as the others' do, instead of taking those it
wins as after a crash (docs/membership.md, "A member that starts after the hold LEAVE")."""

from __future__ import annotations

from ipaddress import ip_address

from ironlb.decide import stand_ins
from ironlb.membership.hold import HeldLink, HoldOffer
from ironlb.plan import Snapshot
from ironlb.standalone.decide import Early, decide_early
from tests.membership.test_membership_fsm import Sim, converged
from tests.standalone.test_hold_decision import ALL, MEMBERS, announced, pick, snapshot

LINK = HeldLink(bytes.fromhex("02aabbccdd03"), ip_address("192.168.1.13"))


def decision_of(sim: Sim, node: str, snap: Snapshot, previous: Early | None = None) -> Early:
    """``node``'s decision from its membership core's view, as ``ironlb run`` makes it (held members, its share)."""
    core = sim.nodes[node]
    held = core.held()
    standing_in = {name: frozenset(str(ip) for ip in member.ips) for name, member in held.items() if member.ips}
    return decide_early(snap, node=node, members=MEMBERS, alive=core.alive(), has_quorum=core.has_quorum(),
                        held=tuple(held), standing_in=standing_in, previous=previous)  # fmt: skip


def test_a_member_that_starts_after_the_hold_leave_takes_none_of_the_held_nodes_ips() -> None:
    """n2's speaker is down as n3 restarts (n3 names n1 its stand-in for everything), then n2 starts. n2 wins the
    first IP if n3 is absent: it must leave it with n3 (n1 answers it with n3's MAC), as n1 does."""
    mine_if_absent = pick("n3", "n2")  # n2 is the next candidate after n3
    theirs = pick("n3", "n1", avoid={mine_if_absent})
    snap = snapshot({"a": mine_if_absent, "b": theirs})
    sim = converged(list(MEMBERS))
    sim.crashed.add("n2")
    sim.run(0.6)
    n1 = decision_of(sim, "n1", snap)
    assert announced(n1, "n3") == {mine_if_absent, theirs}
    share = stand_ins("n3", n1.layer2_by_service, n1.ingress, frozenset({"n1", "n3"}))
    assert share == {"n1": [mine_if_absent, theirs]}
    sim.send("n3", sim.nodes["n3"].leave(sim.now, HoldOffer(10.0, (LINK,), {"n1": [ip_address(mine_if_absent),
                                                                                   ip_address(theirs)]})))  # fmt: skip
    sim.crashed.add("n3")
    sim.run(0.3)
    n1 = decision_of(sim, "n1", snap, n1)
    sim.restart("n2", incarnation=5555)
    sim.run(1.0)
    n1 = decision_of(sim, "n1", snap, n1)
    n2 = decision_of(sim, "n2", snap)
    assert announced(n2, "n2") == set(), "n2 took an IP of the held node (it moved)"
    core = sim.nodes["n2"]
    assert core.settled() and core.alive() == ALL and set(core.held()) == {"n3"}
    winners = {k: d.node for k, d in n2.layer2_by_service.items()}
    assert winners == {"default/a": "n3", "default/b": "n3"}
    assert winners == {k: d.node for k, d in n1.layer2_by_service.items()}
    assert announced(n1, "n1") == set()  # n1 only stands in (with n3's MAC)
    n2 = decision_of(sim, "n2", snap, n2)  # and its next decisions keep that
    assert announced(n2, "n2") == set()
