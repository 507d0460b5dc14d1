"""RFC 4271 section 6.8 connection collisions, decided by the sans-I/O FSM with simulated time.

Both speakers dial each other at once: connection 1 is dialled by A, connection 2 by B. Each side runs a machine
per connection; both sides must close the same TCP connection, the one initiated by the lower BGP identifier.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from ironlb.bgp.errors import CeaseSubcode
from ironlb.bgp.fsm import (
    PEER_KEEPALIVE_WAIT,
    BGPState,
    BGPStateMachine,
    Established,
    KeepaliveAwaited,
    OpenReceived,
    SessionDown,
    collision_keeps_ours,
    resolve_collision,
)
from ironlb.bgp.wire import KeepaliveMessage, NotificationMessage, decode_message, split_messages
from tests.bgp.bgp_harness import A_ADDR, B_ADDR, Pair, config

ASN_A, ASN_B = 64512, 64513


def connection(a_id: str, b_id: str, *, dialled_by_a: bool, b_asn: int = ASN_B) -> Pair:
    """One TCP connection between A and B, OPENs exchanged (both in OpenConfirm), their KEEPALIVEs not delivered."""
    pair = Pair(
        config(ASN_A, b_asn, router_id=IPv4Address(a_id)),
        config(b_asn, ASN_A, router_id=IPv4Address(b_id), peer_address=A_ADDR),
    )
    pair.a.fsm.connection_made(A_ADDR, B_ADDR, pair.now, inbound=not dialled_by_a)
    pair.b.fsm.connection_made(B_ADDR, A_ADDR, pair.now, inbound=dialled_by_a)
    a_open, b_open = pair.a.fsm.data_to_send(), pair.b.fsm.data_to_send()
    pair.b.events.extend(pair.b.fsm.data_received(a_open, pair.now))
    pair.a.events.extend(pair.a.fsm.data_received(b_open, pair.now))
    assert pair.a.fsm.state is pair.b.fsm.state is BGPState.OPEN_CONFIRM
    return pair


def notification(fsm: BGPStateMachine) -> NotificationMessage:
    msgs = [decode_message(m) for m in split_messages(bytearray(fsm.data_to_send()))]
    (note,) = [m for m in msgs if isinstance(m, NotificationMessage)]
    return note


def test_keep_the_connection_initiated_by_the_higher_identifier() -> None:
    one, two = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
    assert collision_keeps_ours(two, one, 1, 2) is True
    assert collision_keeps_ours(one, two, 2, 1) is False
    # Unsigned comparison in host order: 200.0.0.1 is the higher one (negative as a signed 32-bit number).
    assert collision_keeps_ours(IPv4Address("200.0.0.1"), IPv4Address("100.0.0.1"), 1, 2) is True
    # Equal identifiers (eBGP, RFC 6286 2.3): the higher AS number's connection.
    assert collision_keeps_ours(one, one, 65001, 65000) is True
    assert collision_keeps_ours(one, one, 65000, 65001) is False


@pytest.mark.parametrize(("a_id", "b_id"), [("1.1.1.1", "2.2.2.2"), ("2.2.2.2", "1.1.1.1"), ("5.5.5.5", "5.5.5.5")])
def test_both_sides_close_the_same_connection_and_the_other_comes_up(a_id: str, b_id: str) -> None:
    c1 = connection(a_id, b_id, dialled_by_a=True)
    c2 = connection(a_id, b_id, dialled_by_a=False)
    assert c2.a.events_of(OpenReceived) == [OpenReceived(IPv4Address(b_id), ASN_B)]
    # Each side settles when its second OPEN arrived (here: on connection 2 for both).
    a_loser = resolve_collision(c2.a.fsm, c1.a.fsm)
    b_loser = resolve_collision(c2.b.fsm, c1.b.fsm)
    a_keeps_own = IPv4Address(a_id) > IPv4Address(b_id) or (a_id == b_id and ASN_A > ASN_B)
    lost, kept = (c2, c1) if a_keeps_own else (c1, c2)
    assert a_loser is lost.a.fsm and b_loser is lost.b.fsm
    # Close the loser with cease 7 on both ends; the survivor's KEEPALIVEs take it to Established.
    for side in (lost.a, lost.b):
        side.events.extend(side.fsm.close(subcode=CeaseSubcode.CONNECTION_COLLISION))
        assert notification(side.fsm) == NotificationMessage(6, 7, b"")
        assert side.events_of(SessionDown) and not side.events_of(SessionDown)[0].was_established
        assert side.fsm.state is BGPState.IDLE
    kept.pump()
    assert kept.a.fsm.is_established and kept.b.fsm.is_established
    assert kept.a.events_of(Established) and kept.b.events_of(Established)


def test_an_established_connection_wins_over_a_new_one() -> None:
    c1 = connection("9.9.9.9", "1.1.1.1", dialled_by_a=True)
    c1.pump()
    assert c1.a.fsm.is_established
    c2 = connection("9.9.9.9", "1.1.1.1", dialled_by_a=False)
    # A's identifier is higher, but the Established connection is kept whoever dialled it.
    assert resolve_collision(c2.a.fsm, c1.a.fsm) is c2.a.fsm


def test_the_first_open_settles_it_while_the_other_connection_waits_in_open_sent() -> None:
    """Section 6.8 allows checking an OpenSent connection when the peer's identifier is known: it is, from the
    OPEN just received from that peer. A (1.1.1.1) keeps B's (2.2.2.2) inbound connection, even still in OpenSent."""
    c1 = connection("1.1.1.1", "2.2.2.2", dialled_by_a=True)
    pending = BGPStateMachine(config(ASN_A, ASN_B, router_id=IPv4Address("1.1.1.1")))
    pending.connection_made(A_ADDR, B_ADDR, 0.0, inbound=True)
    assert pending.state is BGPState.OPEN_SENT
    assert resolve_collision(c1.a.fsm, pending) is c1.a.fsm
    assert resolve_collision(pending, c1.a.fsm) is None  # the new one has no OPEN yet
    idle = BGPStateMachine(config(ASN_A, ASN_B))
    assert resolve_collision(c1.a.fsm, idle) is None
    same_side = BGPStateMachine(config(ASN_A, ASN_B, router_id=IPv4Address("1.1.1.1")))
    same_side.connection_made(A_ADDR, B_ADDR, 0.0)  # also dialled by A: no collision between those two
    assert resolve_collision(c1.a.fsm, same_side) is None


def test_hold_open_waits_for_confirm_open_before_the_keepalive() -> None:
    """With hold_open the OPEN's KEEPALIVE, and whatever followed the OPEN, wait for confirm_open."""
    pair = Pair(config(ASN_A, ASN_B), config(ASN_B, ASN_A, peer_address=A_ADDR, router_id=IPv4Address("2.2.2.2")))
    pair.a.fsm.hold_open = True
    pair.a.fsm.connection_made(A_ADDR, B_ADDR, pair.now)
    pair.b.fsm.connection_made(B_ADDR, A_ADDR, pair.now, inbound=True)  # A dialled B
    a_open = pair.a.fsm.data_to_send()
    pair.b.fsm.data_received(a_open, pair.now)
    b_bytes = pair.b.fsm.data_to_send()  # B's OPEN and KEEPALIVE in one read
    events = pair.a.fsm.data_received(b_bytes, pair.now)
    assert events == [OpenReceived(IPv4Address("2.2.2.2"), ASN_B)]
    assert pair.a.fsm.state is BGPState.OPEN_CONFIRM and pair.a.fsm.data_to_send() == b""
    assert pair.a.fsm.data_received(b"", pair.now) == []  # still waiting
    events = pair.a.fsm.confirm_open(pair.now)
    assert any(isinstance(e, Established) for e in events) and pair.a.fsm.is_established
    first = decode_message(split_messages(bytearray(pair.a.fsm.data_to_send()))[0])
    assert isinstance(first, KeepaliveMessage)
    assert pair.a.fsm.confirm_open(pair.now) == []


def test_an_inbound_connection_must_send_its_open_soon() -> None:
    cfg = config(ASN_A, ASN_B, inbound_open_time=30.0, open_hold_time=240.0)
    inbound = BGPStateMachine(cfg)
    inbound.connection_made(A_ADDR, B_ADDR, 100.0, inbound=True)
    assert inbound.next_deadline() == 130.0
    events = inbound.timer(130.0)
    assert isinstance(events[0], SessionDown) and inbound.state is BGPState.IDLE
    assert notification(inbound).code == 4
    dialled = BGPStateMachine(cfg)
    dialled.connection_made(A_ADDR, B_ADDR, 100.0)
    assert dialled.next_deadline() == 340.0


def test_passive_open_waits_in_active() -> None:
    fsm = BGPStateMachine(config(ASN_A, ASN_B, passive=True))
    fsm.passive_open()
    assert fsm.state is BGPState.ACTIVE



def test_our_keepalive_waits_for_a_lower_peers_on_a_connection_we_opened() -> None:
    """A (9.9.9.9) dialled B (1.1.1.1): B, if it dialled too, closes its own connection; A's KEEPALIVE waits for
    B's (B has then read A's OPEN), which hold_open holds for the shell (KeepaliveAwaited) until confirm_open."""
    pair = Pair(
        config(ASN_A, ASN_B, router_id=IPv4Address("9.9.9.9")),
        config(ASN_B, ASN_A, peer_address=A_ADDR, router_id=IPv4Address("1.1.1.1")),
    )
    pair.a.fsm.hold_open = True
    pair.a.fsm.connection_made(A_ADDR, B_ADDR, pair.now)
    pair.b.fsm.connection_made(B_ADDR, A_ADDR, pair.now, inbound=True)
    a_open, b_open = pair.a.fsm.data_to_send(), pair.b.fsm.data_to_send()
    assert pair.a.fsm.data_received(b_open, pair.now) == [OpenReceived(IPv4Address("1.1.1.1"), ASN_B)]
    assert pair.a.fsm.confirm_open(pair.now) == [] and pair.a.fsm.data_to_send() == b""  # no KEEPALIVE yet
    assert not pair.a.fsm.confirmed and pair.a.fsm.next_deadline() == pair.now + PEER_KEEPALIVE_WAIT
    pair.b.fsm.data_received(a_open, pair.now)
    b_keepalive = pair.b.fsm.data_to_send()  # B accepted the connection: it never waits
    assert isinstance(decode_message(b_keepalive), KeepaliveMessage)
    assert pair.a.fsm.data_received(b_keepalive, pair.now) == [KeepaliveAwaited()]
    assert pair.a.fsm.awaiting_confirm and pair.a.fsm.data_to_send() == b""
    events = pair.a.fsm.confirm_open(pair.now)
    assert any(isinstance(e, Established) for e in events) and pair.a.fsm.is_established
    assert isinstance(decode_message(split_messages(bytearray(pair.a.fsm.data_to_send()))[0]), KeepaliveMessage)


def test_without_the_peers_keepalive_ours_goes_after_the_wait() -> None:
    fsm = BGPStateMachine(config(ASN_A, ASN_B, router_id=IPv4Address("9.9.9.9")))
    peer = BGPStateMachine(config(ASN_B, ASN_A, peer_address=A_ADDR, router_id=IPv4Address("1.1.1.1")))
    fsm.connection_made(A_ADDR, B_ADDR, 0.0)
    peer.connection_made(B_ADDR, A_ADDR, 0.0, inbound=True)
    fsm.data_to_send()
    fsm.data_received(peer.data_to_send(), 0.0)
    assert fsm.state is BGPState.OPEN_CONFIRM and fsm.data_to_send() == b""
    fsm.timer(PEER_KEEPALIVE_WAIT)
    assert isinstance(decode_message(fsm.data_to_send()), KeepaliveMessage) and fsm.confirmed


def test_a_pending_connection_is_settled_and_one_confirmed_first_is_kept() -> None:
    """The other connection has no OPEN out yet (the shell is still setting it up): settled as if in OpenSent.
    One that sent its KEEPALIVE before the new one was known is kept: the peer may have it up already."""
    c1 = connection("9.9.9.9", "1.1.1.1", dialled_by_a=True)
    pending = BGPStateMachine(config(ASN_A, ASN_B, router_id=IPv4Address("9.9.9.9")))
    pending.inbound = True  # B's connection, accepted, no OPEN sent on it yet
    assert resolve_collision(c1.a.fsm, pending) is None
    assert resolve_collision(c1.a.fsm, pending, other_pending=True) is pending  # A (higher) keeps its own

    first = connection("1.1.1.1", "2.2.2.2", dialled_by_a=True)  # A (lower) sent its KEEPALIVE at once
    assert first.a.fsm.confirmed
    late = Pair(
        config(ASN_A, ASN_B, router_id=IPv4Address("1.1.1.1")),
        config(ASN_B, ASN_A, peer_address=A_ADDR, router_id=IPv4Address("2.2.2.2")),
    )
    late.a.fsm.hold_open = True
    late.a.fsm.connection_made(A_ADDR, B_ADDR, late.now, inbound=True)
    late.b.fsm.connection_made(B_ADDR, A_ADDR, late.now)
    late.a.fsm.data_received(late.b.fsm.data_to_send(), late.now)
    assert late.a.fsm.awaiting_confirm
    # B's identifier is higher, but the connection A confirmed first stands.
    assert resolve_collision(late.a.fsm, first.a.fsm) is late.a.fsm
