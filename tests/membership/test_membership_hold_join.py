"""A member that starts after a restart hold's LEAVE was sent learns the hold from its peers (a hold relay)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from tests.membership.test_membership_fsm import SECRET, STEP, Sim, converged
from tests.membership.test_membership_hold import LINK, X, Y, held_leave, offer

from ironlb.membership import MemberDown, Membership, MembershipConfig, MemberUp
from ironlb.membership.events import HoldBegun, HoldEnded, MemberHeld
from ironlb.membership.hold import (
    MAX_LINKS,
    MAX_RELAYED_HOLDS,
    MAX_UNLISTED_HOLDS,
    HeldLink,
    HoldError,
    HoldOffer,
    RelayRecord,
    decode_hold,
    decode_relay,
    encode_hold,
    encode_relay,
    relay_payloads,
)
from ironlb.membership.simulation import SimNet
from ironlb.membership.table import ENTRY, name_key
from ironlb.membership.wire import MAX_DATAGRAM, MsgType, Packet, decode, encode


def started_during_hold(stand_in: str = "a") -> tuple[Sim, float]:
    """a, b, c; b's speaker is down as c restarts with a hold (so c names a its only stand-in), then b starts."""
    sim = converged(["a", "b", "c"])
    sim.crashed.add("b")
    sim.run(0.6)  # a and c time b out
    assert sim.nodes["a"].alive() == {"a", "c"}
    held_leave(sim, "c", offer(10.0, **{stand_in: [X]}))
    sim.run(0.5)
    assert set(sim.nodes["a"].held()) == {"c"}
    sim.restart("b", incarnation=5555)
    return sim, sim.now


def test_a_member_that_starts_during_a_hold_learns_it_from_its_peers_and_keeps_the_held_member() -> None:
    sim, t0 = started_during_hold()
    b = sim.nodes["b"]
    sim.run(1.0)
    assert b.settled() and b.alive() == {"a", "b", "c"}
    held = b.held()["c"]
    assert held.ips == set() and held.standins == {"a"} and held.links == (LINK,)  # it stands in for nothing
    assert held.until == pytest.approx(sim.nodes["a"].held()["c"].until, abs=4 * STEP)  # the time that remains
    assert HoldBegun("c", 1002) in sim.events_of("b") and MemberUp("c", 1002) in sim.events_of("b")
    assert [e for e in sim.events_of("b") if isinstance(e, MemberDown)] == []
    assert not b.has_quorum() or len(b.alive()) == 3  # c does not count: 2 live of 3
    # it settles as soon as the hold makes its view complete, not at the bound (its peers' views list c)
    settled_at = sim.first("b", lambda e: isinstance(e, MemberHeld))
    assert settled_at is not None and settled_at - t0 < b.config.dead_timeout


def test_the_relayed_hold_ends_like_the_others_when_the_member_returns() -> None:
    sim, _ = started_during_hold()
    sim.run(1.0)
    mark = sim.now
    sim.restart("c", incarnation=4242)
    sim.run(0.5)
    for n in "ab":
        assert sim.events_of(n, since=mark) == [HoldEnded("c", "returned"), MemberDown("c", "restarted"),
                                                MemberUp("c", 4242)], n  # fmt: skip
        assert sim.nodes[n].held() == {} and sim.nodes[n].alive() == {"a", "b", "c"}


def test_the_relayed_hold_expires_with_the_others_and_ends_when_its_stand_in_dies() -> None:
    sim, _ = started_during_hold()
    sim.run(1.0)
    until = sim.nodes["a"].held()["c"].until
    sim.run(until - sim.now + 0.1)
    for n in "ab":
        assert HoldEnded("c", "expired") in sim.events_of(n) and sim.nodes[n].alive() == {"a", "b"}, n

    sim, _ = started_during_hold()
    sim.run(1.0)
    mark = sim.now
    sim.crashed.add("a")  # the stand-in: nobody answers for c's IPs any more
    sim.run(1.0)
    assert HoldEnded("c", "standin_down") in sim.events_of("b", since=mark)
    assert sim.nodes["b"].alive() == {"b"}


def test_relays_stop_once_the_joiner_has_settled() -> None:
    sim, t0 = started_during_hold()
    sim.run(3.0)
    relays = [s for s in sim.log if s.at >= t0 and decode(s.data, [SECRET]).type is MsgType.HOLDS]
    assert relays and all(s.src == "a" and s.dest == "b" for s in relays)
    assert len(relays) <= 3  # sent again every two intervals while b says it is settling, no more


def test_a_member_that_is_no_stand_in_and_restarts_learns_the_hold_again() -> None:
    sim = converged(["a", "b", "c"])
    held_leave(sim, "c", offer(10.0, a=[X]))  # b stands in for nothing
    sim.run(0.5)
    mark = sim.now
    sim.restart("b", incarnation=5555)  # a crash and restart of b: no stand-in, the hold stays
    sim.run(1.0)
    assert set(sim.nodes["a"].held()) == {"c"}
    assert sim.nodes["b"].settled() and sim.nodes["b"].alive() == {"a", "b", "c"} and "c" in sim.nodes["b"].held()
    assert not [e for e in sim.events_of("b", since=mark) if isinstance(e, MemberDown)]


def test_a_joiner_in_a_large_cluster_learns_a_hold_of_its_ring_neighbour() -> None:
    names = [f"n{i:02d}" for i in range(30)]
    sim = SimNet(names, SECRET, start_spread=0.05)
    sim.run(1.5)
    assert sim.agree()
    joiner = names[5]
    leaving = next(n for n in sim.nodes[joiner].neighbours())
    standin = next(n for n in names if n not in (joiner, leaving))
    sim.crash(joiner)
    sim.run(1.0)
    sim.leave(leaving, HoldOffer(10.0, (LINK,), {standin: [Y]}))
    sim.run(0.5)
    sim.restart(joiner)
    mark = sim.now
    sim.run(1.5)
    core = sim.nodes[joiner]
    assert core.settled() and leaving in core.alive() and leaving in core.held()
    assert not [e for t, m, e in sim.events if m == joiner and t >= mark and isinstance(e, MemberDown)]


# ------------------------------------------------------------------------------------------- hostile input


def relay_packet(sim: Sim, ext: bytes, *, sender: str = "a", dest: str = "b", seq: int = 10_000,
                 echo_inc: int | None = None, key: bytes = SECRET) -> bytes:  # fmt: skip
    """A HOLDS datagram from ``sender`` to ``dest`` echoing ``dest``'s last sequence number (a fresh one)."""
    d = sim.nodes[dest]
    packet = Packet(MsgType.HOLDS, sender, dest, sim.nodes[sender].incarnation, seq,
                    d.incarnation if echo_inc is None else echo_inc, d._seq, ext)  # fmt: skip
    return encode(packet, key)


def rec(name: str, inc: int, ext: bytes) -> RelayRecord:
    """A relayed hold of member ``name`` (its address as in ``Sim``: 10.0.0.N, or a made-up one)."""
    index = "abc".find(name)
    return RelayRecord(name, inc, (f"10.0.0.{index + 1}" if index >= 0 else "10.9.9.9", 7946), ext)


def test_relay_codec_round_trip_and_limits() -> None:
    hold = encode_hold(3.0, (LINK,), [], [name_key("a")])
    records = decode_relay(encode_relay([rec("c", 1002, hold)]))
    assert records == [rec("c", 1002, hold)]
    for bad in [b"", b"\x02\x00", encode_relay([rec("c", 1002, hold)])[:-1],
                encode_relay([rec("c", 1002, hold)]) + b"\0",
                bytes((1, MAX_RELAYED_HOLDS + 1))]:  # fmt: skip
        with pytest.raises(HoldError):
            decode_relay(bad)


def run_without_relays(sim: Sim, duration: float) -> None:
    """Run ``sim`` with every HOLDS datagram lost."""
    for _ in range(round(duration / STEP)):
        sim.inflight = [s for s in sim.inflight if decode(s.data, [SECRET]).type is not MsgType.HOLDS]
        sim.run(STEP)


def test_forged_stale_and_malformed_relays_change_nothing() -> None:
    sim, _ = started_during_hold()
    run_without_relays(sim, 0.1)
    b = sim.nodes["b"]
    assert not b.settled() and "a" in b.alive() and b.held() == {}  # it waits for c, whom a's view lists
    hold = encode_hold(5.0, (LINK,), [], [name_key("a")])
    good = encode_relay([rec("c", 1002, hold)])
    for data, reason in [
        (relay_packet(sim, good, key=b"x" * 32), "bad_mac"),
        (relay_packet(sim, good, echo_inc=1001), "stale"),  # echoes b's last incarnation: a replay
        (relay_packet(sim, good[:-1]), "bad_hold"),
        (relay_packet(sim, bytes((1, MAX_RELAYED_HOLDS + 1))), "hold_oversized"),
    ]:
        before = b.rejected.copy()
        assert sim.deliver("b", data) == []
        assert b.rejected - before == {reason: 1}
        assert b.alive() == {"a", "b"} and b.held() == {}
    assert sim.deliver("b", relay_packet(sim, good, sender="c")) == []  # a member's own hold is its LEAVE's
    # a hold longer than this node grants is refused; a relay about itself or a member it does not have is ignored
    long_hold = encode_hold(59.0, (LINK,), [], [])
    sim.deliver("b", relay_packet(sim, encode_relay([rec("c", 1002, long_hold)]), seq=20_000))
    sim.deliver("b", relay_packet(sim, encode_relay([rec("b", b.incarnation, hold),
                                                     rec("zz", 7, hold)]), seq=20_001))  # fmt: skip
    assert b.held() == {} and b.alive() == {"a", "b"} and b.rejected["hold_refused"] == 1
    # the genuine one is taken, once: its replay is refused
    data = relay_packet(sim, good, seq=20_002)
    assert HoldBegun("c", 1002) in sim.deliver("b", data) and set(b.held()) == {"c"}
    before = b.rejected.copy()
    assert sim.deliver("b", data) == [] and b.rejected - before == {"replay": 1}
    # another incarnation of a member held already changes nothing
    assert sim.deliver("b", relay_packet(sim, encode_relay([rec("c", 77, hold)]), seq=20_003)) == []
    assert b.held()["c"].inc == 1002


def test_a_settled_member_takes_no_relay() -> None:
    sim = converged(["a", "b", "c"])
    sim.crashed.add("c")
    sim.run(0.6)
    b = sim.nodes["b"]
    hold = encode_hold(5.0, (LINK,), [], [])
    before = b.rejected.copy()
    assert sim.deliver("b", relay_packet(sim, encode_relay([rec("c", 1002, hold)]))) == []
    assert b.rejected - before == {"relay_late": 1} and b.held() == {} and b.alive() == {"a", "b"}


def test_lost_relays_are_sent_again_within_the_bound() -> None:
    sim, _ = started_during_hold()
    run_without_relays(sim, 0.25)
    assert not sim.nodes["b"].settled()
    sim.run(0.5)
    b = sim.nodes["b"]
    assert b.settled() and "c" in b.held() and b.alive() == {"a", "b", "c"}
    assert not [e for e in sim.events_of("b") if isinstance(e, MemberDown)]


def test_an_old_receiver_drops_a_relay_as_an_unknown_type() -> None:
    """A member of an earlier release knows no message type 4: it rejects the datagram (after the MAC) and is
    otherwise unaffected; this release's decoder is what maps the type."""
    sim = converged(["a", "b", "c"])
    data = relay_packet(sim, encode_relay([]))
    assert decode(data, [SECRET]).type is MsgType.HOLDS
    assert data[3] == 4


def test_a_relay_of_several_holds_with_many_stand_ins_fits_its_datagrams() -> None:
    keys = [bytes([i % 256, i // 256]) * 4 for i in range(1500)]
    payloads = relay_payloads([(f"m{i}", 100 + i, ("10.1.0.1", 7946), 5.0, (LINK,), keys if i == 0 else keys[:3],
                                None) for i in range(40)])  # fmt: skip
    records = [r for p in payloads for r in decode_relay(p)]
    assert all(len(p) <= 6000 + 2 for p in payloads) and len(payloads) > 3
    assert {r.inc for r in records} == set(range(100, 140)) and {r.address for r in records} == {("10.1.0.1", 7946)}
    first = [decode_hold(r.ext) for r in records if r.name == "m0"]
    assert sum(len(h.standins) for h in first) == 1500 and all(h.ips == () for h in first)
    assert isinstance(X, IPv4Address) and MembershipConfig().hold_max > 0


# ------------------------------------------------------------------ a share in several datagrams (its size)


def test_a_share_in_several_datagrams_says_its_size_and_is_complete_only_with_its_last() -> None:
    sim = converged(["a", "b", "c"])
    many = [ip_address(f"fc00::{i:x}") for i in range(3000)]
    mark = sim.now
    held_leave(sim, "c", offer(a=many + many[:10], b=[Y]))  # a repeated IP counts once
    sim.run(0.2)
    got = [e for e in sim.events_of("a", MemberHeld, since=mark) if isinstance(e, MemberHeld)]
    assert len(got) > 2 and [e.complete for e in got] == [False] * (len(got) - 1) + [True]
    assert got[-1].ips == set(many) and sim.nodes["a"].held()["c"].share == 3000
    assert all(len(e.ips) < 3000 for e in got[:-1])
    other = [e for e in sim.events_of("b", MemberHeld, since=mark) if isinstance(e, MemberHeld)]
    assert other and all(e.complete for e in other) and sim.nodes["b"].held()["c"].share is None  # one datagram


def test_the_share_size_codec_and_a_one_datagram_share_unchanged_on_the_wire() -> None:
    keys = [name_key("a")]
    assert decode_hold(encode_hold(2.0, (LINK,), [X], keys, 5)).share == 5
    no_names = decode_hold(encode_hold(2.0, (LINK,), [X], (), 5))
    assert no_names.standins == () and no_names.share == 5
    one = encode_hold(2.0, (LINK,), [X], keys)
    assert decode_hold(one).share is None and len(one) == len(encode_hold(2.0, (LINK,), [X])) + 2 + 8
    with pytest.raises(HoldError):
        decode_hold(encode_hold(2.0, (LINK,), [X], keys, 5)[:-1])
    with pytest.raises(HoldError):
        decode_hold(encode_hold(2.0, (LINK,), [X], keys, 5) + b"\0")
    sim = converged(["a", "b", "c"])
    out = sim.nodes["c"].leave(sim.now, offer(a=[X], b=[Y]))
    for d in out:  # a share in one datagram carries no size: what a build before it reads
        ext = decode(d.data, [SECRET]).payload[21:]
        assert decode_hold(ext).share is None


def test_a_share_claiming_more_than_came_stays_incomplete() -> None:
    sim = converged(["a", "b", "c"])
    a = sim.nodes["a"]
    entry = ENTRY.pack(name_key("c"), 1002, 0, 3)
    ext = encode_hold(5.0, (LINK,), [X], [name_key("a")], 1_000_000)
    packet = Packet(MsgType.LEAVE, "c", "a", 1002, 10_000, a.incarnation, a._seq, entry + ext)
    events = sim.deliver("a", encode(packet, SECRET))
    held = a.held()["c"]
    assert held.ips == {X} and not held.complete and held.share == 65_536  # bounded by MAX_HELD_IPS
    assert [e.complete for e in events if isinstance(e, MemberHeld)] == [False]


# ------------------------------------------------ a joiner whose member list lacks the held member (its Pod replaced)


def started_without_the_held_member() -> tuple[Sim, float]:
    """As ``started_during_hold``, but b's member list lacks c (a speaker's Pod listing while c's Pod is replaced)."""
    sim, _ = started_during_hold()
    sim.nodes["b"] = Membership("b", SECRET, {n: sim.members[n] for n in "ab"}, sim.config, incarnation=5555)
    return sim, sim.now


def test_a_joiner_whose_member_list_lacks_the_held_member_learns_its_name_and_address_and_waits() -> None:
    sim, t0 = started_without_the_held_member()
    b = sim.nodes["b"]
    sim.run(0.1)
    assert b.unlisted_holds() == {"c": sim.members["c"]}  # from a's HOLDS, although their member lists differ
    assert not b.settled() and b.held() == {}
    sim.run(0.3)  # its caller is slow: past the dead timeout, where a view without evidence would settle
    b.set_members(sim.members)  # its caller adds it (the speaker's next Pod listing keeps it)
    assert not b.settled(), "settled on the new member list before the HOLDS that holds c"
    sim.run(0.3)
    assert b.settled() and set(b.held()) == {"c"} and b.alive() == {"a", "b", "c"}
    assert b.unlisted_holds() == {}
    settled = sim.first("b", lambda e: isinstance(e, HoldBegun))
    assert settled is not None and settled - t0 < 2 * b.config.dead_timeout  # within the bound
    assert not [e for e in sim.events_of("b") if isinstance(e, MemberDown)]


def test_a_joiner_whose_caller_never_adds_the_held_member_settles_at_the_bound_as_before() -> None:
    sim, t0 = started_without_the_held_member()
    b = sim.nodes["b"]
    sim.run(0.5)
    assert not b.settled()  # the named member is evidence of one it does not have: it waits
    sim.run(0.5)
    assert b.settled() and b.unlisted_holds() == {} and b.alive() == {"a", "b"}


def test_unlisted_holds_are_bounded() -> None:
    sim, _ = started_during_hold()
    run_without_relays(sim, 0.1)
    b = sim.nodes["b"]
    hold = encode_hold(5.0, (LINK,), [], [])
    records = [RelayRecord(f"x{i}", 7, ("10.9.0.1", 7946), hold) for i in range(MAX_RELAYED_HOLDS)]
    sim.deliver("b", relay_packet(sim, encode_relay(records), seq=30_000))
    sim.deliver("b", relay_packet(sim, encode_relay([RelayRecord("y", 7, ("10.9.0.2", 7946), hold)]), seq=30_001))
    assert len(b.unlisted_holds()) == MAX_UNLISTED_HOLDS and "y" not in b.unlisted_holds()
    assert b.rejected["hold_oversized"] >= 1


# ------------------------------------------------------- the stand-ins' shares relayed: the held member's IPs


def test_the_joiner_knows_the_held_members_ips_once_every_stand_in_relayed_its_share() -> None:
    """d's speaker is down as c restarts naming a and b its stand-ins; d starts: a's and b's HOLDS carry their
    shares, and d knows c's IPs with a stand-in (``HeldMember.kept``) once both have come; with b's lost, not."""
    for lose_b in (False, True):
        sim = converged(["a", "b", "c", "d"])
        sim.crashed.add("d")
        sim.run(0.6)
        held_leave(sim, "c", offer(10.0, a=[X], b=[Y]))
        sim.run(0.3)
        sim.restart("d", incarnation=6666)
        for _ in range(round(1.0 / STEP)):
            if lose_b:
                sim.inflight = [s for s in sim.inflight
                                if not (s.src == "b" and decode(s.data, [SECRET]).type is MsgType.HOLDS)]  # fmt: skip
            sim.run(STEP)
        held = sim.nodes["d"].held()["c"]
        assert held.ips == set() and held.standins == {"a", "b"}
        if lose_b:
            assert held.kept() is None and set(held.relayed) == {"a"}
        else:
            assert held.kept() == {X, Y} and held.relayed == {"a": ({X}, 1), "b": ({Y}, 1)}


def test_a_relay_sends_no_share_while_its_own_is_incomplete() -> None:
    records = decode_relay(relay_payloads([("c", 7, ("10.0.0.3", 7946), 5.0, (LINK,), [name_key("a")], None)])[0])
    assert decode_hold(records[0].ext).share is None and decode_hold(records[0].ext).ips == ()
    many = [ip_address(f"fc00::{i:x}") for i in range(700)]
    payloads = relay_payloads([("c", 7, ("10.0.0.3", 7946), 5.0, (LINK,), [name_key("a")], many)])
    holds = [decode_hold(r.ext) for p in payloads for r in decode_relay(p)]
    assert len(holds) > 1 and all(h.share == 700 for h in holds) and {ip for h in holds for ip in h.ips} == set(many)


def test_the_largest_relay_fits_a_datagram() -> None:
    """16 links, 253-byte names, IPv6 addresses, 4,096 stand-ins and thousands of IPs: every HOLDS fits
    ``MAX_DATAGRAM`` with the longest sender and destination names (``encode`` would refuse it)."""
    links = tuple(HeldLink(bytes(6), IPv6Address("fe80::1")) for _ in range(MAX_LINKS))
    ips = [ip_address(f"fc00::{i:x}") for i in range(3000)]
    keys = [bytes([i % 256, i // 256]) * 4 for i in range(4096)]
    payloads = relay_payloads([("n" * 252 + str(k), 7, ("fc00::1", 7946), 30.0, links, keys, ips) for k in range(3)])
    sizes = [len(encode(Packet(MsgType.HOLDS, "x" * 253, "y" * 253, 1, 1, 1, 1, p), SECRET)) for p in payloads]
    assert max(sizes) <= MAX_DATAGRAM
