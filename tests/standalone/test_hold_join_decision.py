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
    known = {name: frozenset(str(ip) for ip in kept) for name, member in held.items()
             if member.relayed and (kept := member.kept()) is not None}  # fmt: skip
    return decide_early(snap, node=node, members=MEMBERS, alive=core.alive(), has_quorum=core.has_quorum(),
                        held=tuple(held), standing_in=standing_in, known=known, previous=previous)  # fmt: skip


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


def test_a_starting_member_waits_for_its_whole_share_before_it_tells_the_held_nodes_services_from_new_ones() -> None:
    """n2 starts during n3's hold, and its share (the IPs it is to stand in for) comes in several datagrams. Had it
    decided from the first part, a Service of the part still to come would look new (created during the hold), and
    n2 would take its IP from n3 with its own MAC. While the share is ``pending`` n3 keeps what it wins; once it is
    complete n2 decides as n1 does (a Service created during the hold goes to n2, n3's own stay n3's)."""
    first = pick("n3", "n2")
    second = pick("n3", "n2", avoid={first})  # in the share's later datagram
    new = pick("n3", "n2", avoid={first, second})  # created during the hold
    before = snapshot({"first": first, "second": second})
    n1 = decide_early(before, node="n1", members=MEMBERS, alive=ALL)
    assert stand_ins("n3", n1.layer2_by_service, n1.ingress, ALL) == {"n2": [first, second]}
    during = snapshot({"first": first, "second": second, "new": new})
    n1 = decide_early(during, node="n1", members=MEMBERS, alive=ALL, held=("n3",),
                      previous=decide_early(before, node="n1", members=MEMBERS, alive=ALL, previous=n1,
                                            held=("n3",)))  # fmt: skip
    assert {k: d.node for k, d in n1.layer2_by_service.items()} == {
        "default/first": "n3", "default/second": "n3", "default/new": "n2"}  # fmt: skip

    part = {"n3": frozenset({first})}
    n2 = decide_early(during, node="n2", members=MEMBERS, alive=ALL, held=("n3",), standing_in=part, pending={"n3"})
    assert announced(n2, "n2") == set(), "n2 took an IP of the part of its share still to come"
    n2 = decide_early(during, node="n2", members=MEMBERS, alive=ALL, held=("n3",), standing_in=part,
                      pending={"n3"}, previous=n2)  # fmt: skip
    assert announced(n2, "n2") == set()
    whole = {"n3": frozenset({first, second})}
    n2 = decide_early(during, node="n2", members=MEMBERS, alive=ALL, held=("n3",), standing_in=whole, previous=n2)
    assert announced(n2, "n2") == {new}
    assert {k: d.node for k, d in n2.layer2_by_service.items()} == {k: d.node for k, d in n1.layer2_by_service.items()}
    # what a share decided from its first part gave before: the later part's Service taken as new
    early = decide_early(during, node="n2", members=MEMBERS, alive=ALL, held=("n3",), standing_in=part)
    assert announced(early, "n2") == {second, new}


def test_the_view_lists_a_share_in_several_datagrams_as_pending_until_its_last() -> None:
    """What the fast process sends the main process: the share in ``standing_in`` only once complete, the held
    member in ``pending`` until then."""
    from ironlb.membership.service import MembershipService

    sim = converged(list(MEMBERS))
    service = MembershipService(sim.nodes["n1"], clock=lambda: sim.now)
    many = [ip_address(f"fc00::{i:x}") for i in range(3000)]
    datagrams = [d for d in sim.nodes["n3"].leave(sim.now, HoldOffer(10.0, (LINK,), {"n1": many})) if d.dest == "n1"]
    views = []
    for d in datagrams:
        service._on_datagram(d.data, sim.members["n3"], sim.now, wake=False)
        views.append(service.view)
    assert views[0].held == {"n3"} and views[0].pending == {"n3"} and views[0].standing_in == {}
    assert views[-1].pending == frozenset() and views[-1].standing_in == {"n3": {str(ip) for ip in many}}


def test_a_member_that_starts_after_the_hold_leave_gives_a_service_created_during_it_to_the_next_node() -> None:
    """As above, with a Service created during the hold that n3 would win, n2 next: n1 bars n3 from it and counts
    on n2 to announce it. n2 knows n3's IPs from the stand-in's relayed share (``HeldMember.kept``), so it bars n3
    as n1 does and announces it; without the share it kept it with n3 and nobody answered it until the hold ended."""
    held_ip = pick("n3", "n1")
    new = pick("n3", "n2", avoid={held_ip})
    before, during = snapshot({"held": held_ip}), snapshot({"held": held_ip, "new": new})
    sim = converged(list(MEMBERS))
    sim.crashed.add("n2")
    sim.run(0.6)
    n1 = decision_of(sim, "n1", before)
    sim.send("n3", sim.nodes["n3"].leave(sim.now, HoldOffer(10.0, (LINK,), {"n1": [ip_address(held_ip)]})))
    sim.crashed.add("n3")
    sim.run(0.3)
    n1 = decision_of(sim, "n1", before, n1)
    sim.restart("n2", incarnation=5555)
    sim.run(1.0)
    n1 = decision_of(sim, "n1", during, decision_of(sim, "n1", before, n1))
    assert n1.layer2_by_service["default/new"].node == "n2" and n1.layer2_by_service["default/held"].node == "n3"
    n2 = decision_of(sim, "n2", during)
    assert announced(n2, "n2") == {new}, "n2 left the new Service with n3: nobody answers it"
    assert sim.nodes["n2"].held()["n3"].kept() == {ip_address(held_ip)}
    assert {k: d.node for k, d in n2.layer2_by_service.items()} == {k: d.node for k, d in n1.layer2_by_service.items()}
    n2 = decision_of(sim, "n2", during, n2)
    assert announced(n2, "n2") == {new}
