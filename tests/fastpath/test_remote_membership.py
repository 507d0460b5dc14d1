"""The membership view ``ironlb run``'s and ``ironlb speaker``'s main process reads from the fast process's
``view`` messages (``RemoteMembership.update``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ironlb.fastproc.parent import RemoteMembership
from ironlb.membership import MembershipConfig

MEMBERS = {"a": ("10.0.0.1", 7946), "b": ("10.0.0.2", 7946), "c": ("10.0.0.3", 7946)}


def view(**fields: Any) -> dict[str, Any]:
    members = {k: list(v) for k, v in MEMBERS.items() if k != "a"}
    return {"t": "view", "alive": ["a", "b", "c"], "quorum": True, "settled": True, "members": members, **fields}


def test_a_hold_and_the_ips_this_node_stands_in_for_reach_the_view_and_each_change_is_reported() -> None:
    changes: list[frozenset[str]] = []
    process: Any = SimpleNamespace()
    remote = RemoteMembership(process, "a", b"k" * 32, MEMBERS, MembershipConfig(),
                              on_change=lambda alive, quorum: changes.append(alive))  # fmt: skip
    remote.update(view())
    remote.update(view(held=["c"], standing_in={"c": ["10.1.0.1"]}))
    assert remote.view.held == {"c"}
    assert remote.view.standing_in == {"c": {"10.1.0.1"}}
    remote.update(view(held=["c"], standing_in={"c": ["10.1.0.1", "10.1.0.2"]}))  # the hold's next datagram
    assert remote.view.standing_in == {"c": {"10.1.0.1", "10.1.0.2"}}
    remote.update(view(held=["c"], standing_in={"c": ["10.1.0.1", "10.1.0.2"]}))
    assert len(changes) == 3, "each new share is reported once"
    remote.update(view())  # the hold ended
    assert remote.view.standing_in == {} and remote.view.held == frozenset()
