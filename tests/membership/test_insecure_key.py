"""``ironlb run --insecure-no-secret``: members sharing a member list hear each other with the key derived from
it (whatever order each was given the list in), and members of another list are rejected; the key is never a
constant."""

from __future__ import annotations

from ironlb.membership import Membership, MembershipConfig, parse_members
from ironlb.membership.wire import member_list_key


def exchange(nodes: dict[str, Membership], addrs: dict[str, tuple[str, int]], seconds: float) -> None:
    by_addr = {a: n for n, a in addrs.items()}
    now = 0.0
    while now < seconds:
        now = round(now + 0.01, 6)
        for name, node in nodes.items():
            out, _ = node.tick(now)
            for data, addr, _dest in out:
                dest = by_addr.get(addr)
                if dest in nodes:
                    nodes[dest].datagram_received(data, addrs[name], now)


def test_members_of_one_list_hear_each_other_and_another_list_is_rejected() -> None:
    flags = {"a": "a=10.0.0.1,b=10.0.0.2,c=10.0.0.3", "b": "c=10.0.0.3,a=10.0.0.1:7946,b=10.0.0.2"}
    lists = {name: parse_members(flag) for name, flag in flags.items()}
    assert member_list_key(lists["a"]) == member_list_key(lists["b"])
    cfg = MembershipConfig(quorum="off")
    nodes = {name: Membership(name, member_list_key(lists[name]), lists[name], cfg) for name in ("a", "b")}
    # c runs with another member list (one more node): its key differs, so a and b never accept it.
    other = parse_members("a=10.0.0.1,b=10.0.0.2,c=10.0.0.3,d=10.0.0.4")
    nodes["c"] = Membership("c", member_list_key(other), other, cfg)
    exchange(nodes, lists["a"], 1.0)
    assert nodes["a"].alive() == frozenset({"a", "b"})
    assert nodes["b"].alive() == frozenset({"a", "b"})
    assert sum(nodes["a"].rejected.values()) > 0
