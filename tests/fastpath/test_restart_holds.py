"""``ironlb.fastproc.holds.RestartHolds``: the one code that joins the membership's hold events to the responder, in
the fast process and in thread mode (``--fastpath thread``)."""

from __future__ import annotations

from ipaddress import IPv4Address
from types import SimpleNamespace
from typing import Any

from ironlb.fastproc.holds import RestartHolds
from ironlb.layer2.standin_metrics import HOLDS_BEGUN, HOLDS_ENDED, StandInMetrics
from ironlb.membership.events import HoldBegun, HoldEnded, MemberHeld
from ironlb.membership.hold import HeldLink

LINK = (HeldLink(bytes(range(6)), IPv4Address("192.0.2.3")),)
IP = IPv4Address("192.0.2.10")


class FakeResponder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def stand_in(self, name: str, links: Any, ips: Any, dead_after: float) -> None:
        self.calls.append(("stand_in", name, [tuple(link) for link in links], set(ips), dead_after))

    def stand_in_returned(self, name: str) -> None:
        self.calls.append(("returned", name))

    def stand_down(self, name: str) -> None:
        self.calls.append(("down", name))

    def pause_stand_ins(self, paused: bool) -> None:
        self.calls.append(("pause", paused))

    def count_stand_ins(self) -> None:
        self.calls.append(("count",))


class FakeService:
    def __init__(self, quorum: bool = True) -> None:
        self.ended: list[str] = []
        config = SimpleNamespace(dead_timeout=0.35)
        self.membership = SimpleNamespace(config=config, has_quorum=lambda: quorum)

    def end_hold(self, name: str) -> None:
        self.ended.append(name)


def holds(responder: Any, service: Any) -> tuple[RestartHolds, StandInMetrics]:
    metrics = StandInMetrics(None)
    return RestartHolds(metrics, lambda: responder, lambda: service), metrics


def test_a_hold_makes_the_stand_in_answer_then_hand_back_and_counts_it() -> None:
    responder, service = FakeResponder(), FakeService()
    h, metrics = holds(responder, service)
    h.on_event(HoldBegun("n3", 7))
    h.on_event(MemberHeld("n3", 7, 5.0, LINK, frozenset({IP})))
    assert responder.calls == [
        ("stand_in", "n3", [(bytes(range(6)), IPv4Address("192.0.2.3"))], {IP}, 0.35), ("pause", False), ("count",),
    ]
    responder.calls.clear()
    h.on_event(HoldEnded("n3", "returned"))
    assert responder.calls == [("returned", "n3"), ("count",)]
    responder.calls.clear()
    h.on_event(HoldEnded("n3", "standin_down"))
    assert responder.calls == [("down", "n3"), ("count",)]
    assert metrics.value(HOLDS_BEGUN, "n3") == 1
    assert metrics.value(HOLDS_ENDED, "returned") == 1


def test_a_member_given_no_ips_does_not_stand_in_nor_probe() -> None:
    responder = FakeResponder()
    h, _ = holds(responder, FakeService())
    h.on_event(MemberHeld("n3", 7, 5.0, LINK, frozenset()))
    assert responder.calls == []


def test_the_probe_ends_the_hold_and_no_quorum_pauses_the_stand_ins() -> None:
    responder, service = FakeResponder(), FakeService(quorum=False)
    h, _ = holds(responder, service)
    h.on_event(MemberHeld("n3", 7, 5.0, LINK, frozenset({IP})))
    assert ("pause", True) in responder.calls
    h.on_unreachable("n3")
    assert service.ended == ["n3"]
    h.on_quorum(True)
    assert responder.calls[-1] == ("pause", False)


def test_without_a_responder_or_a_membership_only_the_counts_move() -> None:
    h, metrics = holds(None, None)
    h.on_event(HoldBegun("n3", 7))
    h.on_event(MemberHeld("n3", 7, 5.0, LINK, frozenset({IP})))
    h.on_unreachable("n3")
    h.on_quorum(False)
    assert metrics.value(HOLDS_BEGUN, "n3") == 1
