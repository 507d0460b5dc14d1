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


def test_the_view_carries_pending_shares_unlisted_holds_and_relayed_ips() -> None:
    """What a member that starts during a hold goes by, through the fast process's view message: held members whose
    share is still coming (``pending``), held members its list lacks (``unlisted``, with their addresses) and the
    held members' IPs its stand-ins relayed (``kept``); each change is reported."""
    changes: list[frozenset[str]] = []
    process: Any = SimpleNamespace()
    remote = RemoteMembership(process, "a", b"k" * 32, MEMBERS, MembershipConfig(),
                              on_change=lambda alive, quorum: changes.append(alive))  # fmt: skip
    remote.update(view(held=["c"], pending=["c"]))
    assert remote.view.pending == {"c"} and remote.view.unlisted == {} and remote.view.kept == {}
    remote.update(view(held=["c"], unlisted={"d": ["10.0.0.4", 7946]}))
    assert remote.view.pending == frozenset() and remote.view.unlisted == {"d": ("10.0.0.4", 7946)}
    remote.update(view(held=["c"], kept={"c": ["10.1.0.1"]}))
    assert remote.view.kept == {"c": {"10.1.0.1"}} and remote.view.unlisted == {}
    assert len(changes) == 3
