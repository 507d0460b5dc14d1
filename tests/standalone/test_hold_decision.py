"""A restart hold in ironlb run's decision (ironlb.standalone.decide, ClusterDecision): the held member keeps the
IPs it had when its hold began, and is no candidate for any other, so a Service created (or an IP changing hands)
during the hold is announced by the next node instead of going unanswered until the held node returns."""

from __future__ import annotations

from ironlb.decide import stand_ins
from ironlb.layer2.election import elect, sort_candidates
from ironlb.plan import Snapshot
from ironlb.standalone.decide import Early, decide_early
from tests.support.announce import pinned_service
from tests.support.objects import documents, l2_advertisement_yaml, pool_yaml, snapshot_of

MEMBERS = ("n1", "n2", "n3")
ALL = frozenset(MEMBERS)
POOL = [f"192.168.1.{i}" for i in range(200, 250)]
CONFIG = documents(pool_yaml("l2", "192.168.1.200-192.168.1.249"), l2_advertisement_yaml("l2", ["l2"]))


def order(ip: str) -> tuple[str, ...]:
    """The election order of a Service pinned to ``ip`` with every member live (no hold)."""
    return tuple(sort_candidates(MEMBERS, ip))


def snapshot(services: dict[str, str]) -> Snapshot:
    return snapshot_of(CONFIG, *(pinned_service(name, ip) for name, ip in services.items()))


def pick(first: str, second: str | None = None, *, avoid: set[str] | None = None) -> str:
    """An IP of the pool whose election puts ``first`` (then ``second``) at the head."""
    for ip in POOL:
        got = order(ip)
        if ip not in (avoid or set()) and got[0] == first and (second is None or got[1] == second):
            return ip
    raise AssertionError(f"no IP elects {first}, {second}")


def decided(snap: Snapshot, previous: Early | None, *, alive: frozenset[str] = ALL, held: tuple[str, ...] = ()) -> Early:
    return decide_early(snap, node="n1", members=MEMBERS, alive=alive, previous=previous, held=held)


def announced(early: Early, node: str) -> set[str]:
    assert early.cluster is not None
    return set(early.cluster.node(node).announcement.layer2)


def test_a_service_created_during_a_hold_goes_to_the_next_node_and_the_held_ips_stay() -> None:
    held_ip = pick("n3")
    new_ip = pick("n3", "n2", avoid={held_ip})
    before = snapshot({"held": held_ip})
    early = decided(before, None)
    assert early.layer2_by_service["default/held"].candidates == order(held_ip)
    # n3 restarts: its hold LEAVE names, per member, the IPs it stands in for (the next candidate of each).
    share = stand_ins("n3", early.layer2_by_service, early.ingress, ALL)
    early = decided(before, early, held=("n3",))
    assert early.layer2_by_service["default/held"].node == "n3", "nothing moves"
    assert all(held_ip not in announced(early, n) for n in ("n1", "n2")), "stood in for (its MAC), not announced"

    # A Service n3 would win is created meanwhile: n2, next in its election, announces it (with gratuitous ARP).
    during = snapshot({"held": held_ip, "new": new_ip})
    early = decided(during, early, held=("n3",))
    assert early.layer2_by_service["default/new"].node == "n2"
    assert new_ip in announced(early, "n2")
    assert early.layer2_by_service["default/held"].node == "n3"
    assert all(held_ip not in announced(early, n) for n in ("n1", "n2"))
    assert [ip for ips in share.values() for ip in ips] == [held_ip], "the stand-ins answer for the held IP"
    assert early.cluster is not None and early.cluster.held == {"n3": frozenset({held_ip})}
    reasons = {r.node: r for r in early.finish().layer2_by_service["default/new"].nodes}
    assert (reasons["n3"].reason, reasons["n3"].detail) == ("notOwner", "restarting"), "the status file says why"
    assert reasons["n2"].reason is None
    assert {r.node: r for r in early.finish().layer2_by_service["default/held"].nodes}["n3"].reason is None

    # n3 is back (its hold ended, returned): the elections count it again, it wins the new Service too.
    early = decided(during, early)
    assert early.layer2_by_service["default/new"].node == "n3"
    assert early.layer2_by_service["default/held"].node == "n3"
    assert early.cluster is not None and early.cluster.held == {}


def test_an_ip_changing_hands_during_a_hold_skips_the_held_node() -> None:
    held_ip = pick("n3")
    moving = pick("n1", "n3", avoid={held_ip})  # n1 owns it, n3 is next
    snap = snapshot({"held": held_ip, "moving": moving})
    early = decided(snap, None)
    early = decided(snap, early, held=("n3",))
    assert early.layer2_by_service["default/moving"].node == "n1"
    early = decided(snap, early, alive=frozenset({"n2", "n3"}), held=("n3",))  # n1 dies during the hold
    assert early.layer2_by_service["default/moving"].node == "n2", "n3 is held: the IP goes past it"
    assert early.layer2_by_service["default/held"].node == "n3"
    assert moving in announced(early, "n2")


def test_the_held_ips_come_from_the_decision_before_the_hold_even_with_a_new_snapshot() -> None:
    """The hold and a Service change seen in one recompute: the held IPs are those of the previous decision."""
    held_ip = pick("n2")
    new_ip = pick("n2", avoid={held_ip})
    early = decided(snapshot({"held": held_ip}), None)
    early = decided(snapshot({"held": held_ip, "new": new_ip}), early, held=("n2",))
    assert early.layer2_by_service["default/held"].node == "n2"
    assert early.layer2_by_service["default/new"].node not in (None, "n2")


def test_a_held_member_without_a_previous_decision_counts_as_live() -> None:
    held_ip = pick("n3")
    early = decided(snapshot({"held": held_ip}), None, held=("n3",))
    assert early.layer2_by_service["default/held"].node == "n3"


def test_the_held_ips_outlive_a_failed_decision() -> None:
    """ironlb run keeps the last decision's holds (``held_ips``): a decision that failed (no ``previous`` next
    time) does not make the held member a candidate for everything again."""
    held_ip = pick("n3")
    new_ip = pick("n3", "n2", avoid={held_ip})
    early = decided(snapshot({"held": held_ip}), None)
    early = decided(snapshot({"held": held_ip}), early, held=("n3",))
    assert early.cluster is not None
    saved = dict(early.cluster.held)
    after = decide_early(snapshot({"held": held_ip, "new": new_ip}), node="n1", members=MEMBERS, alive=ALL,
                         held=("n3",), held_ips=saved)  # fmt: skip
    assert after.layer2_by_service["default/new"].node == "n2"
    assert after.layer2_by_service["default/held"].node == "n3"


def test_the_held_members_restriction_is_the_election_without_it() -> None:
    """Barred from a Service, a held member is simply not live for it: the same result as the election without it."""
    snap = snapshot({"held": pick("n3"), **{f"s{i}": ip for i, ip in enumerate(POOL[:12])}})
    early = decided(snap, None)
    early = decided(snap, early, held=("n3",))
    assert early.cluster is not None
    kept = early.cluster.held["n3"]
    for key, item in early.cluster.services.items():
        if set(item.service.ingress) <= kept:
            continue
        alone = elect(item.service, item.pool, early.cluster.node_objects, ["n1", "n2"], item.slices)
        assert early.layer2_by_service[key] == alone, key


DUAL_CONFIG = documents(
    pool_yaml("l2", "192.168.1.200-192.168.1.249", "fd00:1::/120"), l2_advertisement_yaml("l2", ["l2"])
)


def stack_service(name: str, *ips: str) -> str:
    """A Service asking for ``ips``: one IPv4 address (single stack), or one of each family (dual stack)."""
    cluster_ips = ["10.96.0.10", "fd00:96::10"][: len(ips)]
    policy = "RequireDualStack" if len(ips) > 1 else "SingleStack"
    return f"""\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
  annotations:
    metallb.io/loadBalancerIPs: {", ".join(ips)}
spec:
  type: LoadBalancer
  ipFamilyPolicy: {policy}
  clusterIPs: [{", ".join(cluster_ips)}]
  ports:
  - name: http
    protocol: TCP
    port: 80
"""


def test_a_service_gaining_a_second_family_during_a_hold_moves_only_the_new_ip() -> None:
    """The held owner's stand-in keeps answering the IP it had (its MAC, its node forwarding, no connection
    reset); only the new IP, which has no traffic yet, goes to the next node. After the hold the Service is one
    node's again (MetalLB's per-Service election)."""
    v4 = pick("n3", "n2")
    v6 = "fd00:1::5"
    single = snapshot_of(DUAL_CONFIG, stack_service("web", v4))
    early = decided(single, None)
    assert early.layer2_by_service["default/web"].node == "n3"
    early = decided(single, early, held=("n3",))
    assert early.cluster is not None and early.cluster.held == {"n3": frozenset({v4})}

    dual = snapshot_of(DUAL_CONFIG, stack_service("web", v4, v6))
    early = decided(dual, early, held=("n3",))
    web = early.layer2_by_service["default/web"]
    assert (web.node, web.kept, web.kept_by) == ("n2", (v4,), "n3")
    status = early.finish().plan["services"]["default/web"]["layer2"]
    assert status == {"node": "n2", "reason": None, "interfaces": [], "kept": {"node": "n3", "ips": [v4]}}
    assert announced(early, "n2") == {v6}, "only the new IP moves"
    assert all(v4 not in announced(early, n) for n in MEMBERS), "the held IP stays with n3's stand-in"
    assert ("default/web", "layer2", "n2", v4) not in early.cluster.node("n2").announcement.series
    assert ("default/web", "layer2", "n2", v6) in early.cluster.node("n2").announcement.series
    assert stand_ins("n2", early.layer2_by_service, early.ingress, ALL) == {"n1": [v6]}, "n2 never had the v4"

    # The same from a membership change alone (another member's death): the kept IP stays kept.
    other = decided(dual, early, alive=frozenset({"n2", "n3"}), held=("n3",))
    assert other.layer2_by_service["default/web"].kept == (v4,)
    assert announced(other, "n2") == {v6}

    # n3 back: the Service is n3's again, both families.
    back = decided(dual, early)
    assert back.layer2_by_service["default/web"].node == "n3"
    assert announced(back, "n3") == {v4, v6}
    assert back.layer2_by_service["default/web"].kept == ()

    # n3 dies during its hold instead (unreachable, expired): the kept IP goes too, to n2 with the rest.
    dead = decided(dual, early, alive=frozenset({"n1", "n2"}))
    assert dead.layer2_by_service["default/web"].node == "n2"
    assert announced(dead, "n2") == {v4, v6}


def test_a_member_that_starts_during_a_hold_agrees_with_the_others() -> None:
    """n1 saw n3's hold begin; n2 starts during it (no earlier decision) and learns of it from the hold LEAVE n3
    sent it: the IPs n2 is to stand in for. A Service created during the hold that n3 would win goes to n2 on both
    (not to n3 on n2, where it would go unanswered); the Services n3 had stay n3's on both."""
    held_ip = pick("n3", "n2")  # n2 succeeds n3: n3's hold names n2 its stand-in for it
    other_ip = pick("n3", "n1", avoid={held_ip})  # n1 succeeds n3
    new_ip = pick("n3", "n2", avoid={held_ip, other_ip})
    before = snapshot({"held": held_ip, "other": other_ip})
    n1 = decided(before, None)
    share = stand_ins("n3", n1.layer2_by_service, n1.ingress, ALL)
    assert share == {"n2": [held_ip], "n1": [other_ip]}
    during = snapshot({"held": held_ip, "other": other_ip, "new": new_ip})
    n1 = decided(during, decided(before, n1, held=("n3",)), held=("n3",))
    assert n1.layer2_by_service["default/new"].node == "n2"

    n2 = decide_early(during, node="n2", members=MEMBERS, alive=ALL, held=("n3",),
                      standing_in={"n3": frozenset(share["n2"])})  # fmt: skip
    assert {k: d.node for k, d in n2.layer2_by_service.items()} == {k: d.node for k, d in n1.layer2_by_service.items()}
    assert announced(n2, "n2") == {new_ip}
    assert n2.cluster is not None and n2.cluster.held == {"n3": frozenset({held_ip, other_ip})}
    # Its next decisions keep that (a membership change; a new snapshot).
    n2 = decide_early(during, node="n2", members=MEMBERS, alive=ALL, held=("n3",), previous=n2)
    assert n2.layer2_by_service["default/new"].node == "n2"
    n2 = decide_early(snapshot({"held": held_ip, "new": new_ip}), node="n2", members=MEMBERS, alive=ALL,
                      held=("n3",), previous=n2)  # fmt: skip
    assert n2.layer2_by_service["default/new"].node == "n2"
    assert n2.layer2_by_service["default/held"].node == "n3"


def test_a_starting_member_named_no_stand_in_keeps_the_held_members_services() -> None:
    """A starting member the hold named no stand-in cannot tell a Service created during the hold from one the
    held node's decision did not count it for: it keeps them with the held node (nobody answers a new one until
    the hold ends), never taking an IP a stand-in answers for."""
    held_ip = pick("n3", "n2")
    n2 = decide_early(snapshot({"held": held_ip}), node="n2", members=MEMBERS, alive=ALL, held=("n3",))
    assert n2.layer2_by_service["default/held"].node == "n3"
    assert announced(n2, "n2") == set()


def test_a_hold_seen_before_the_held_member_was_counted_alive_is_not_a_hold_of_nothing() -> None:
    """The hold can reach a starting member before any of its decisions counted the held member alive (its first
    heartbeat and the hold LEAVE in one view): the held member then keeps what it wins, not nothing."""
    held_ip = pick("n3", "n1")
    snap = snapshot({"held": held_ip})
    alone = decide_early(snap, node="n2", members=MEMBERS, alive=frozenset({"n1", "n2"}))
    assert alone.layer2_by_service["default/held"].node == "n1"
    n2 = decide_early(snap, node="n2", members=MEMBERS, alive=ALL, held=("n3",), previous=alone)
    assert n2.layer2_by_service["default/held"].node == "n3", "n1's stand-in answers for it: nothing moves"
    assert n2.cluster is not None and n2.cluster.held == {"n3": frozenset({held_ip})}
