"""The fast process's rules: it only ever answers for less than the heavy side's last decision."""

from __future__ import annotations

import pytest

from ironlb.fastproc.guard import Guard, GuardConfig

A = {"192.168.1.240": ()}
ALL3 = frozenset({"n1", "n2", "n3"})


def guarded(now: float = 0.0) -> Guard:
    g = Guard(GuardConfig(wedge_timeout=10, join_grace=2), now, membership=True)
    g.view(1, ALL3, True, now)
    g.decided(A, 1, ALL3, now)
    return g


def test_the_decision_is_answered_while_membership_agrees() -> None:
    g = guarded()
    assert g.answering(0.5) == A


def test_nothing_is_answered_before_membership_has_quorum() -> None:
    g = Guard(GuardConfig(), 0.0, membership=True)
    g.decided(A, 0, frozenset({"n1"}), 0.0)
    assert g.answering(0.1) == {}


def test_a_member_dying_does_not_make_the_decision_stale() -> None:
    g = guarded()
    g.view(2, frozenset({"n1", "n2"}), True, 1.0)
    assert g.answering(100.0 - 95) == A


def test_quorum_lost_withdraws_at_once_and_voids_older_decisions() -> None:
    g = guarded()
    g.view(2, frozenset({"n1"}), False, 1.0)
    assert g.answering(1.0) == {}
    g.view(3, ALL3, True, 2.0)  # the partition heals: the old decision is not answered again
    assert g.answering(2.0) == {}
    g.decided({"192.168.1.241": ()}, 3, ALL3, 2.1)  # made from the healed view
    assert g.answering(2.1) == {"192.168.1.241": ()}


def test_a_joined_member_makes_the_decision_stale_after_the_grace() -> None:
    g = Guard(GuardConfig(wedge_timeout=10, join_grace=2), 0.0, membership=True)
    two = frozenset({"n1", "n2"})
    g.view(1, two, True, 0.0)
    g.decided(A, 1, two, 0.0)
    g.view(2, ALL3, True, 1.0)  # n3 joins; it may win the IP
    assert g.answering(2.9) == A
    assert g.next_deadline(2.9) == pytest.approx(3.0)
    assert g.answering(3.0) == {}
    g.decided(A, 2, ALL3, 3.5)  # the heavy side counted n3 and still gives us the IP
    assert g.answering(3.5) == A


def test_a_silent_heavy_side_is_wedged_once_and_its_decision_void() -> None:
    g = guarded()
    assert not g.wedged(9.9)
    assert g.next_deadline(5.0) == pytest.approx(10.0)
    assert g.wedged(10.0)
    assert not g.wedged(11.0)  # reported once
    assert g.answering(10.0) == {}
    assert g.heard(12.0)  # it speaks again: the caller rejoins
    g.rejoined(5)
    g.view(5, frozenset({"n1"}), False, 12.0)
    g.view(6, ALL3, True, 12.5)
    assert g.answering(12.5) == {}  # not the old decision
    g.decided(A, 6, ALL3, 12.6)
    assert g.answering(12.6) == A


def test_without_membership_only_the_wedge_rule_applies() -> None:
    g = Guard(GuardConfig(wedge_timeout=1), 0.0, membership=False)
    g.decided(A, 0, frozenset(), 0.0)
    assert g.answering(0.5) == A
    assert g.answering(1.0) == {}


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError):
        GuardConfig(wedge_timeout=0)
