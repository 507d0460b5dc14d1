"""FSM tests: two BGPStateMachine instances back to back in memory, simulated time."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import pytest

from ironlb.bgp.attributes import Attributes, parse_community
from ironlb.bgp.config import DynamicASN, PeerConfig
from ironlb.bgp.fsm import (
    BGPState,
    BGPStateMachine,
    EndOfRibReceived,
    Established,
    NotificationReceived,
    RouteRefreshReceived,
    RoutesUnsendable,
    SessionDown,
)
from ironlb.bgp.wire import (
    AS_SEQUENCE,
    IPV4_UNICAST,
    IPV6_UNICAST,
    Capabilities,
    NotificationMessage,
    OpenMessage,
    UpdateMessage,
    decode_message,
    encode_keepalive,
    encode_open,
    encode_route_refresh,
    split_messages,
)
from tests.bgp.bgp_harness import A_ADDR, B_ADDR, Pair, config


def established_pair(a_kw: dict[str, object] | None = None, b_kw: dict[str, object] | None = None) -> Pair:
    a_kw = dict(a_kw or {})
    b_kw = dict(b_kw or {})
    my = a_kw.pop("my_asn", 64512)
    peer = a_kw.pop("peer_asn", 64513)
    b_kw.setdefault("router_id", IPv4Address("2.2.2.2"))
    b_kw.setdefault("peer_address", A_ADDR)
    pair = Pair(config(my, peer, **a_kw), config(b_kw.pop("my_asn", peer), b_kw.pop("peer_asn", my), **b_kw))
    pair.connect()
    return pair


def updates(side_msgs: list[object]) -> list[UpdateMessage]:
    return [m for m in side_msgs if isinstance(m, UpdateMessage)]


def announced(msgs: list[UpdateMessage]) -> list[IPv4Network | IPv6Network]:
    out: list[IPv4Network | IPv6Network] = []
    for m in msgs:
        out.extend(m.nlri)
        if m.mp_reach:
            out.extend(m.mp_reach.nlri)
    return out


def raw_open(asn: int, hold: int = 90, caps: Capabilities | None = None, bgp_id: str = "9.9.9.9") -> bytes:
    caps = caps if caps is not None else Capabilities(multiprotocol=frozenset({IPV4_UNICAST}), four_octet_asn=asn)
    return encode_open(OpenMessage.for_asn(asn, hold, IPv4Address(bgp_id), caps))


def single(cfg: PeerConfig, now: float = 0.0) -> BGPStateMachine:
    s = BGPStateMachine(cfg)
    s.connection_made(A_ADDR, B_ADDR, now)
    s.data_to_send()
    return s


def sent_notification(s: BGPStateMachine) -> NotificationMessage:
    msgs = [decode_message(m) for m in split_messages(bytearray(s.data_to_send()))]
    notes = [m for m in msgs if isinstance(m, NotificationMessage)]
    assert len(notes) == 1, msgs
    return notes[0]


# --------------------------------------------------------------------------- establishment


def test_establish_and_negotiate() -> None:
    pair = established_pair({"hold_time": 90}, {"hold_time": 30})
    for side in (pair.a, pair.b):
        assert side.fsm.state is BGPState.ESTABLISHED
        (ev,) = side.events_of(Established)
        assert ev.hold_time == 30 and ev.keepalive_time == 10
        assert ev.four_octet_as and ev.route_refresh
        assert ev.families == frozenset({IPV4_UNICAST, IPV6_UNICAST})
    assert pair.a.events_of(Established)[0].peer_asn == 64513
    assert pair.a.events_of(Established)[0].peer_router_id == IPv4Address("2.2.2.2")
    assert [type(m).__name__ for m in pair.a.messages()] == ["OpenMessage", "KeepaliveMessage"]
    assert pair.a.fsm.counters.opens_sent == 1 and pair.a.fsm.counters.established_transitions == 1


def test_states_during_handshake() -> None:
    s = BGPStateMachine(config())
    assert s.state is BGPState.IDLE
    s.connection_started()
    assert s.state is BGPState.CONNECT
    s.connection_failed()
    assert s.state is BGPState.ACTIVE
    s.connection_made(A_ADDR, B_ADDR, 0.0)
    assert s.state is BGPState.OPEN_SENT
    op = decode_message(s.data_to_send())
    assert isinstance(op, OpenMessage) and op.hold_time == 90 and op.asn == 64512
    s.data_received(raw_open(64513), 1.0)
    assert s.state is BGPState.OPEN_CONFIRM
    s.data_received(encode_keepalive(), 1.0)
    assert s.state is BGPState.ESTABLISHED


def test_router_id_defaults() -> None:
    s = single(PeerConfig(my_asn=1, peer_asn=2, peer_address=ip_address("10.0.0.2")))
    assert s.router_id == A_ADDR
    s6 = BGPStateMachine(PeerConfig(my_asn=1, peer_asn=2, peer_address=ip_address("fd00::2"), node_name="node-a"))
    s6.connection_made(ip_address("fd00::1"), ip_address("fd00::2"), 0)
    assert s6.router_id is not None and s6.router_id != IPv4Address("0.0.0.0")


def test_dynamic_asn() -> None:
    for mode, peer, ok in (
        (DynamicASN.INTERNAL, 64512, True),
        (DynamicASN.INTERNAL, 64513, False),
        (DynamicASN.EXTERNAL, 64513, True),
        (DynamicASN.EXTERNAL, 64512, False),
        (DynamicASN.ANY, 7, True),
    ):
        s = single(config(64512, mode))
        events = s.data_received(raw_open(peer), 1.0)
        assert (s.state is BGPState.OPEN_CONFIRM) is ok, (mode, peer, events)


# --------------------------------------------------------------------------- OPEN errors


def test_bad_peer_asn_sends_2_2() -> None:
    s = single(config(64512, 64513))
    (ev,) = s.data_received(raw_open(64999), 1.0)
    assert isinstance(ev, SessionDown)
    assert "unexpected peer ASN 64999, want 64513" in ev.reason
    assert ev.notification_sent == NotificationMessage(2, 2, b"")
    assert sent_notification(s) == NotificationMessage(2, 2, b"")
    assert s.state is BGPState.IDLE


def test_bad_peer_asn_between_two_fsms() -> None:
    pair = Pair(config(64512, 64513), config(64514, 64512, peer_address=A_ADDR, router_id=IPv4Address("2.2.2.2")))
    pair.connect()
    (down,) = pair.a.events_of(SessionDown)
    assert down.notification_sent == NotificationMessage(2, 2, b"")
    (note,) = pair.b.events_of(NotificationReceived)
    assert (note.code, note.subcode) == (2, 2)


def test_four_byte_asn_required() -> None:
    s = single(config(4200000001, 64513))
    caps = Capabilities(multiprotocol=frozenset({IPV4_UNICAST}))
    (ev,) = s.data_received(raw_open(64513, caps=caps), 1.0)
    assert isinstance(ev, SessionDown) and "peer does not support 4-byte ASNs" in ev.reason
    note = sent_notification(s)
    assert (note.code, note.subcode) == (2, 7)
    assert note.data == bytes((65, 4)) + struct.pack("!I", 4200000001)


def test_unacceptable_hold_time() -> None:
    s = single(config())
    s.data_received(raw_open(64513, hold=2), 1.0)
    assert sent_notification(s) == NotificationMessage(2, 6, b"")


def test_bad_bgp_identifier() -> None:
    s = single(config())
    s.data_received(raw_open(64513, bgp_id="0.0.0.0"), 1.0)
    assert (sent_notification(s).code, 3) == (2, 3)


def test_no_common_family() -> None:
    s = single(config(families=frozenset({IPV6_UNICAST})))
    s.data_received(raw_open(64513), 1.0)
    note = sent_notification(s)
    assert (note.code, note.subcode) == (2, 7)


def test_peer_without_mp_capabilities_means_ipv4_only() -> None:
    s = single(config())
    s.data_received(raw_open(64513, caps=Capabilities(four_octet_asn=64513)), 1.0)
    s.data_received(encode_keepalive(), 1.0)
    assert s.negotiated is not None and s.negotiated.families == frozenset({IPV4_UNICAST})


def test_unexpected_messages_are_fsm_errors() -> None:
    s = single(config())
    s.data_received(encode_keepalive(), 1.0)
    assert sent_notification(s) == NotificationMessage(5, 1, b"\x04")
    s = single(config())
    s.data_received(raw_open(64513), 1.0)
    s.data_to_send()
    s.data_received(raw_open(64513), 1.0)
    assert sent_notification(s) == NotificationMessage(5, 2, b"\x01")
    pair = established_pair()
    pair.a.fsm.data_received(raw_open(64513), pair.now)
    assert sent_notification(pair.a.fsm) == NotificationMessage(5, 3, b"\x01")


def test_garbage_in_established_sends_header_error() -> None:
    pair = established_pair()
    events = pair.a.fsm.data_received(b"\x00" * 19, pair.now)
    assert isinstance(events[-1], SessionDown) and events[-1].was_established
    assert sent_notification(pair.a.fsm) == NotificationMessage(1, 1, b"")


def test_notification_received_tears_down() -> None:
    pair = established_pair()
    pair.b.events.extend(pair.b.fsm.close("bye"))
    pair.pump()
    note, down = pair.a.events[-2:]
    assert isinstance(note, NotificationReceived) and (note.code, note.subcode) == (6, 2)
    assert isinstance(down, SessionDown) and "bye" in down.reason and down.notification_sent is None
    assert pair.a.fsm.state is BGPState.IDLE


# --------------------------------------------------------------------------- timers


def test_keepalive_every_third_of_hold() -> None:
    pair = established_pair({"hold_time": 90}, {"hold_time": 90})
    start = pair.now
    assert pair.a.fsm.next_deadline() == start + 30
    before = pair.a.fsm.counters.keepalives_sent
    pair.advance(95)
    assert pair.a.fsm.counters.keepalives_sent - before == 3
    assert pair.a.fsm.state is BGPState.ESTABLISHED and pair.b.fsm.state is BGPState.ESTABLISHED
    pair.advance(3600)
    assert pair.a.fsm.state is BGPState.ESTABLISHED


def test_configured_keepalive_time() -> None:
    pair = established_pair({"hold_time": 90, "keepalive_time": 5})
    assert pair.a.events_of(Established)[0].keepalive_time == 5
    before = pair.a.fsm.counters.keepalives_sent
    pair.advance(20.5)
    assert pair.a.fsm.counters.keepalives_sent - before == 4


def test_keepalive_capped_by_negotiated_hold() -> None:
    pair = established_pair({"hold_time": 90, "keepalive_time": 20}, {"hold_time": 9})
    assert pair.a.events_of(Established)[0].keepalive_time == 3


def test_hold_timer_expiry_sends_4_0() -> None:
    pair = established_pair({"hold_time": 9}, {"hold_time": 9})
    start = pair.now
    pair.advance(8.9, b_silent=True)
    assert pair.a.fsm.state is BGPState.ESTABLISHED
    pair.advance(0.2, b_silent=True)
    (down,) = pair.a.events_of(SessionDown)
    assert down.notification_sent == NotificationMessage(4, 0, b"")
    assert down.was_established and "hold timer expired" in down.reason
    assert pair.a.fsm.next_deadline() is None
    (note,) = pair.b.events_of(NotificationReceived)
    assert note.code == 4
    assert pair.now - start == pytest.approx(9.1)


def test_hold_timer_is_reset_by_updates_and_keepalives() -> None:
    pair = established_pair({"hold_time": 9}, {"hold_time": 9})
    pair.advance(60)
    assert pair.a.fsm.state is BGPState.ESTABLISHED


def test_hold_time_zero_disables_timers() -> None:
    pair = established_pair({"hold_time": 0})
    assert pair.a.fsm.next_deadline() is None and pair.b.fsm.next_deadline() is None
    pair.advance(10_000)
    assert pair.a.fsm.state is BGPState.ESTABLISHED


def test_open_sent_hold_timer() -> None:
    s = single(config(), now=0.0)
    assert s.next_deadline() == 240.0
    (ev,) = s.timer(240.0)
    assert isinstance(ev, SessionDown) and ev.notification_sent == NotificationMessage(4, 0, b"")


# --------------------------------------------------------------------------- UPDATEs


def v4_hosts(n: int, base: int = 0) -> list[IPv4Network]:
    return [IPv4Network((int(IPv4Address("10.0.0.0")) + base + i, 32)) for i in range(n)]


def test_pack_10000_ipv4_hosts_into_minimal_updates() -> None:
    pair = established_pair()
    attrs = Attributes(communities=(parse_community("64512:1"),))
    prefixes = v4_hosts(10_000)
    pair.a.fsm.set_routes(dict.fromkeys(prefixes, attrs))
    pair.pump()
    raw = [m for m in pair.a.sent if m[18] == 2]
    msgs = updates(pair.a.messages())
    assert sorted(announced(msgs)) == sorted(prefixes)
    assert all(len(m) <= 4096 for m in raw)
    # Attributes: ORIGIN 4 + AS_PATH 9 + NEXT_HOP 7 + COMMUNITIES 7 = 27; header 19 + 4 lengths.
    per_message = (4096 - 19 - 4 - 27) // 5
    assert per_message == 809
    assert len(raw) == -(-10_000 // per_message) == 13
    assert all(len(m) + 5 > 4096 for m in raw[:-1])
    for m in msgs:
        assert m.origin == 0 and m.as_path == ((AS_SEQUENCE, (64512,)),)
        assert m.next_hop == A_ADDR and m.local_pref is None
        assert m.communities == (parse_community("64512:1"),)
    assert pair.a.fsm.prefixes_announced == 10_000 and pair.a.fsm.prefixes_pending == 0
    assert pair.a.fsm.counters.updates_sent == 13
    assert pair.b.fsm.counters.updates_received == 13


def test_identical_attributes_share_updates_different_ones_do_not() -> None:
    pair = established_pair()
    a1, a2 = Attributes(communities=(1,)), Attributes(large_communities=((64512, 1, 2),))
    routes = dict.fromkeys(v4_hosts(3), a1) | dict.fromkeys(v4_hosts(2, base=100), a2)
    pair.a.fsm.set_routes(routes)
    pair.pump()
    msgs = updates(pair.a.messages())
    assert len(msgs) == 2
    by_len = sorted(msgs, key=lambda m: len(m.nlri))
    assert by_len[0].large_communities == ((64512, 1, 2),) and not by_len[0].communities
    assert by_len[1].communities == (1,) and not by_len[1].large_communities


def test_attributes_too_large_are_reported_as_an_event_not_sent() -> None:
    pair = established_pair()
    huge = Attributes(communities=tuple(range(1100)))  # 4400 bytes of COMMUNITIES: no UPDATE can carry them
    fits, too_big = v4_hosts(2)
    events = pair.a.fsm.set_routes({fits: Attributes(), too_big: huge})
    assert events == [RoutesUnsendable((too_big,))]
    pair.pump()
    assert announced(updates(pair.a.messages())) == [fits]
    assert pair.a.fsm.set_routes({fits: Attributes()}) == []


def test_withdrawals_are_packed_and_diffed() -> None:
    pair = established_pair()
    prefixes = v4_hosts(5000)
    pair.a.fsm.set_routes(dict.fromkeys(prefixes, Attributes()))
    pair.pump()
    n_before = len(pair.a.sent)
    keep = prefixes[:1000]
    pair.a.fsm.set_routes(dict.fromkeys(keep, Attributes()))
    pair.pump()
    new = [decode_message(m) for m in pair.a.sent[n_before:]]
    assert all(isinstance(m, UpdateMessage) and not m.nlri for m in new)
    withdrawn = [p for m in updates(new) for p in m.withdrawn]
    assert sorted(withdrawn) == sorted(prefixes[1000:])
    assert len(new) == -(-4000 // ((4096 - 23) // 5)) == 5
    assert pair.a.fsm.prefixes_announced == 1000


def test_attribute_change_reannounces_only_changed() -> None:
    pair = established_pair()
    prefixes = v4_hosts(10)
    pair.a.fsm.set_routes(dict.fromkeys(prefixes, Attributes()))
    pair.pump()
    n_before = len(pair.a.sent)
    routes = dict.fromkeys(prefixes, Attributes())
    routes[prefixes[3]] = Attributes(communities=(7,))
    pair.a.fsm.set_routes(routes)
    pair.pump()
    new = updates([decode_message(m) for m in pair.a.sent[n_before:]])
    assert len(new) == 1 and new[0].nlri == (prefixes[3],) and new[0].communities == (7,)
    pair.a.fsm.set_routes(routes)
    pair.pump()
    assert len(pair.a.sent) == n_before + 1


def test_ibgp_local_pref_and_empty_as_path() -> None:
    pair = established_pair({"my_asn": 64512, "peer_asn": 64512}, {"my_asn": 64512, "peer_asn": 64512})
    pair.a.fsm.set_routes({IPv4Network("192.0.2.1/32"): Attributes(), IPv4Network("192.0.2.2/32"): Attributes(250)})
    pair.pump()
    msgs = updates(pair.a.messages())
    assert sorted(m.local_pref for m in msgs) == [100, 250]
    assert all(m.as_path == () for m in msgs)


def test_ipv6_mp_reach_and_unreach() -> None:
    a6, b6 = ip_address("fd00::1"), ip_address("fd00::2")
    cfg_a = PeerConfig(my_asn=64512, peer_asn=64513, peer_address=b6, router_id=IPv4Address("1.1.1.1"))
    cfg_b = PeerConfig(my_asn=64513, peer_asn=64512, peer_address=a6, router_id=IPv4Address("2.2.2.2"))
    pair = Pair(cfg_a, cfg_b)
    pair.a.fsm.connection_made(a6, b6, pair.now)
    pair.b.fsm.connection_made(b6, a6, pair.now)
    pair.pump()
    v6 = [IPv6Network(f"fd00:1::{i:x}/128") for i in range(300)]
    v4 = IPv4Network("192.0.2.1/32")
    routes = dict.fromkeys(v6, Attributes(large_communities=((1, 2, 3),)))
    routes[v4] = Attributes()
    pair.a.fsm.set_routes(routes)
    pair.pump()
    msgs = updates(pair.a.messages())
    assert all(m.next_hop is None and not m.nlri for m in msgs)
    assert sorted(announced(msgs)) == sorted(v6)
    for m in msgs:
        assert m.mp_reach is not None and m.mp_reach.next_hops == (a6,)
        assert m.large_communities == ((1, 2, 3),)
    # 300 x 17 bytes do not fit in one message.
    assert len(msgs) == 2
    # IPv4 has no IPv4 next hop on an IPv6 session: pending, not sent.
    assert pair.a.fsm.prefixes_pending == 1 and pair.a.fsm.prefixes_announced == 300
    n = len(pair.a.sent)
    pair.a.fsm.set_routes({})
    pair.pump()
    gone = updates([decode_message(m) for m in pair.a.sent[n:]])
    assert sorted(p for m in gone if m.mp_unreach for p in m.mp_unreach.withdrawn) == sorted(v6)


def test_ipv4_over_ipv6_with_configured_next_hop() -> None:
    a6, b6 = ip_address("fd00::1"), ip_address("fd00::2")
    cfg = PeerConfig(
        my_asn=64512,
        peer_asn=64513,
        peer_address=b6,
        router_id=IPv4Address("1.1.1.1"),
        next_hop_ipv4=IPv4Address("192.0.2.254"),
    )
    s = BGPStateMachine(cfg)
    s.connection_made(a6, b6, 0)
    s.set_routes({IPv4Network("192.0.2.1/32"): Attributes()})
    s.data_received(raw_open(64513), 0)
    s.data_received(encode_keepalive(), 0)
    msgs = updates([decode_message(m) for m in split_messages(bytearray(s.data_to_send()))])
    assert msgs[0].next_hop == IPv4Address("192.0.2.254")


def test_local_asn_replaces_my_asn_in_open_and_as_path() -> None:
    """BGPPeer localASN: the OPEN and the AS_PATH carry it, never myASN (FRR ``local-as N no-prepend replace-as``)."""
    pair = established_pair({"local_asn": 65010, "peer_asn": 64513}, {"my_asn": 64513, "peer_asn": 65010})
    assert pair.a.fsm.is_established and pair.b.events_of(Established)[0].peer_asn == 65010
    pair.a.fsm.set_routes({IPv4Network("10.9.0.1/32"): Attributes()})
    pair.pump()
    (upd,) = updates(pair.a.messages())
    assert upd.as_path == ((AS_SEQUENCE, (65010,)),)


def test_four_octet_local_asn_sends_as_trans_and_the_capability() -> None:
    s = BGPStateMachine(config(64512, 64513, local_asn=4200000001))
    s.connection_made(A_ADDR, B_ADDR, 0.0)
    (msg,) = [decode_message(m) for m in split_messages(bytearray(s.data_to_send()))]
    assert isinstance(msg, OpenMessage) and msg.asn == 4200000001
    assert msg.my_as == 23456 and msg.capabilities.four_octet_asn == 4200000001


def test_local_asn_decides_ibgp_and_dynamic_asn() -> None:
    assert config(64512, 65010, local_asn=65010).static_ibgp is True
    assert config(64512, 64512, local_asn=65010).static_ibgp is False
    pair = established_pair({"local_asn": 65010, "peer_asn": DynamicASN.EXTERNAL}, {"my_asn": 65010, "peer_asn": 65010})
    assert not pair.a.fsm.is_established  # the peer has localASN's AS: internal, not external
    with pytest.raises(ValueError, match="invalid localASN"):
        config(64512, 64513, local_asn=23456)


def test_two_byte_peer_gets_two_byte_as_path() -> None:
    s = single(config(64512, 64513))
    s.set_routes({IPv4Network("192.0.2.1/32"): Attributes()})
    s.data_received(raw_open(64513, caps=Capabilities(multiprotocol=frozenset({IPV4_UNICAST}))), 0)
    s.data_received(encode_keepalive(), 0)
    raw = [m for m in split_messages(bytearray(s.data_to_send())) if m[18] == 2]
    msg = decode_message(raw[0], four_octet_as=False)
    assert isinstance(msg, UpdateMessage) and msg.as_path == ((AS_SEQUENCE, (64512,)),)
    assert bytes.fromhex("400204" + "0201" + "fc00") in raw[0]


def test_end_of_rib_with_graceful_restart() -> None:
    pair = established_pair({"graceful_restart": True}, {"graceful_restart": True})
    assert pair.a.events_of(Established)[0].graceful_restart
    # Routes set before Established go out first, then one EoR per family.
    pair2 = Pair(
        config(graceful_restart=True, next_hop_ipv6=IPv6Address("fd00::a")),
        config(64513, 64512, graceful_restart=True, peer_address=A_ADDR, router_id=IPv4Address("2.2.2.2")),
    )
    pair2.a.fsm.set_routes({IPv4Network("192.0.2.1/32"): Attributes(), IPv6Network("fd00::1/128"): Attributes()})
    pair2.connect()
    msgs = updates(pair2.a.messages())
    assert [m.end_of_rib() for m in msgs] == [None, None, IPV4_UNICAST, IPV6_UNICAST]
    assert msgs[1].mp_reach is not None and msgs[1].mp_reach.next_hops == (IPv6Address("fd00::a"),)
    assert sorted(e.family for e in pair2.b.events_of(EndOfRibReceived)) == [IPV4_UNICAST, IPV6_UNICAST]
    op = pair2.a.messages()[0]
    assert isinstance(op, OpenMessage) and op.capabilities.graceful_restart is not None
    assert op.capabilities.graceful_restart.restart_time == 120


def test_no_end_of_rib_without_graceful_restart() -> None:
    pair = established_pair({"graceful_restart": True}, {"graceful_restart": False})
    assert not any(m.end_of_rib() for m in updates(pair.a.messages()))


def test_reconnect_resends_everything() -> None:
    pair = established_pair()
    routes = dict.fromkeys(v4_hosts(50), Attributes())
    pair.a.fsm.set_routes(routes)
    pair.pump()
    pair.a.fsm.connection_lost("reset")
    pair.b.fsm.connection_lost("reset")
    assert pair.a.fsm.prefixes_announced == 0 and pair.a.fsm.prefixes_pending == 50
    n = len(pair.a.sent)
    pair.connect()
    again = updates([decode_message(m) for m in pair.a.sent[n:]])
    assert sorted(announced(again)) == sorted(routes)
    assert pair.a.fsm.counters.established_transitions == 2


def test_route_refresh_resends_family() -> None:
    pair = established_pair()
    pair.a.fsm.set_routes({IPv4Network("192.0.2.1/32"): Attributes(), IPv6Network("fd00::1/128"): Attributes()})
    pair.pump()
    pair.a.fsm.data_to_send()
    events = pair.a.fsm.data_received(encode_route_refresh(1, 1), pair.now)
    assert events == [RouteRefreshReceived(IPV4_UNICAST)]
    msgs = updates([decode_message(m) for m in split_messages(bytearray(pair.a.fsm.data_to_send()))])
    assert announced(msgs) == [IPv4Network("192.0.2.1/32")]


def test_close_sends_cease_with_shutdown_message() -> None:
    pair = established_pair()
    (down,) = pair.a.fsm.close("node draining")
    assert isinstance(down, SessionDown) and down.was_established
    note = sent_notification(pair.a.fsm)
    assert (note.code, note.subcode) == (6, 2)
    assert note.data == bytes((13,)) + b"node draining"


def test_graceful_close_sends_nothing_when_gr_negotiated() -> None:
    pair = established_pair({"graceful_restart": True}, {"graceful_restart": True})
    pair.a.fsm.data_to_send()
    (down,) = pair.a.fsm.close("restart", graceful_restart=True)
    assert isinstance(down, SessionDown) and down.notification_sent is None
    assert pair.a.fsm.data_to_send() == b""
    # Without GR negotiated, a graceful close still says goodbye properly.
    pair = established_pair()
    pair.a.fsm.close("restart", graceful_restart=True)
    assert sent_notification(pair.a.fsm).code == 6


def test_byte_at_a_time_delivery() -> None:
    a = BGPStateMachine(config())
    b = BGPStateMachine(config(64513, 64512, peer_address=A_ADDR, router_id=IPv4Address("2.2.2.2")))
    a.connection_made(A_ADDR, B_ADDR, 0)
    b.connection_made(B_ADDR, A_ADDR, 0)
    a.set_routes({IPv4Network("192.0.2.1/32"): Attributes()})
    for _ in range(5):
        for src, dst in ((a, b), (b, a)):
            for byte in src.data_to_send():
                dst.data_received(bytes((byte,)), 0)
    assert a.is_established and b.is_established
    assert b.counters.updates_received == 1


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="hold time"):
        config(hold_time=2)
    with pytest.raises(ValueError, match="keepaliveTime"):
        config(hold_time=9, keepalive_time=9)
    with pytest.raises(ValueError):
        config(my_asn=0)
    assert config(peer_asn=DynamicASN.ANY).static_ibgp is None
    assert config(64512, 64512).static_ibgp is True
    assert PeerConfig(my_asn=1, peer_asn=2, peer_address=IPv6Address("fd00::1"), peer_port=1790).label == (
        "[fd00::1]:1790"
    )
