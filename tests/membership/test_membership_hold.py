"""The restart hold in the sans-I/O core: a LEAVE that keeps the sender alive for the election while it restarts."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from tests.membership.test_membership_fsm import SECRET, STEP, Sim, converged

from ironlb.layer2.election import sort_candidates
from ironlb.membership import MemberDown, MembershipConfig, MemberUp, QuorumChanged
from ironlb.membership.events import HoldBegun, HoldEnded, MemberHeld
from ironlb.membership.hold import (
    MAX_HOLD_MS,
    HeldLink,
    HoldError,
    HoldOffer,
    decode_hold,
    encode_hold,
    hold_chunks,
)
from ironlb.membership.simulation import SimNet
from ironlb.membership.table import ENTRY
from ironlb.membership.wire import MsgType, Packet, decode, encode

LINK = HeldLink(bytes.fromhex("02aabbccdd03"), IPv4Address("192.168.1.13"))
X, Y, Z = IPv4Address("192.168.1.240"), IPv4Address("192.168.1.241"), IPv6Address("fc00::240")


def offer(seconds: float = 5.0, **stand_in: list[IPv4Address | IPv6Address]) -> HoldOffer:
    return HoldOffer(seconds, (LINK,), stand_in)


def held_leave(sim: Sim, name: str, hold: HoldOffer) -> None:
    sim.send(name, sim.nodes[name].leave(sim.now, hold))
    sim.crashed.add(name)


def test_codec_round_trip_and_limits() -> None:
    links = (LINK, HeldLink(bytes(6), IPv6Address("fe80::1")))
    payload = decode_hold(encode_hold(4.5, links, [X, Z, Y]))
    assert payload.seconds == 4.5
    assert payload.links == links
    assert set(payload.ips) == {X, Y, Z}
    good = encode_hold(1.0, (LINK,), [X])
    for bad, reason in [
        (good[:3], "bad_hold"),
        (good + b"\0", "bad_hold"),
        (good[:-1], "bad_hold"),
        (b"\x02" + good[1:], "bad_hold"),
        (bytes((1,)) + (MAX_HOLD_MS + 1).to_bytes(4, "big") + good[5:], "hold_oversized"),
        (good[:5] + b"\xff" + good[6:], "hold_oversized"),
    ]:
        with pytest.raises(HoldError) as err:
            decode_hold(bad)
        assert err.value.reason == reason
    with pytest.raises(ValueError):
        encode_hold(0, (), [])
    with pytest.raises(ValueError):
        encode_hold(61, (), [])


def test_a_held_member_stays_alive_and_each_stand_in_gets_its_share() -> None:
    sim = converged(["a", "b", "c"])
    t0 = sim.now
    held_leave(sim, "c", offer(a=[X, Z], b=[Y]))
    sim.run(3.0)
    shares: dict[str, set[IPv4Address | IPv6Address]] = {"a": {X, Z}, "b": {Y}}
    for n, share in shares.items():
        core = sim.nodes[n]
        assert core.alive() == {"a", "b", "c"}, n
        assert core.has_quorum()  # two live members of three
        assert sim.events_of(n, MemberDown, since=t0) == []
        held = [e for e in sim.events_of(n, MemberHeld, since=t0) if isinstance(e, MemberHeld)]
        assert held and held[-1].ips == share and held[-1].links == (LINK,)
        assert held[-1].until == pytest.approx(t0 + sim.latency + 5.0, abs=2 * STEP)
        assert set(core.held()) == {"c"}
        assert core.next_deadline() > sim.now  # the held member's silence is no deadline: no busy loop


def test_a_replayed_hold_changes_nothing() -> None:
    sim = converged(["a", "b", "c"])
    held_leave(sim, "c", offer(a=[X]))
    sim.run(0.2)
    leaves = [s for s in sim.log if s.src == "c" and s.dest == "a" and decode(s.data, [SECRET]).type is MsgType.LEAVE]
    before, held = sim.nodes["a"].rejected.copy(), sim.nodes["a"].held()["c"]
    for sent in leaves:
        assert sim.deliver("a", sent.data) == []
    assert sim.nodes["a"].rejected - before == {"replay": len(leaves)}
    assert sim.nodes["a"].held()["c"] is held and held.ips == {X}


def test_the_hold_ends_when_the_member_returns() -> None:
    sim = converged(["a", "b", "c"])
    held_leave(sim, "c", offer(a=[X]))
    sim.run(2.0)
    mark = sim.now
    sim.restart("c", incarnation=4242)
    sim.run(0.5)
    for n in "ab":
        evs = sim.events_of(n, since=mark)
        assert evs == [HoldEnded("c", "returned"), MemberDown("c", "restarted"), MemberUp("c", 4242)], n
        assert sim.nodes[n].alive() == {"a", "b", "c"} and sim.nodes[n].held() == {}
    # the old incarnation's hold cannot be replayed now
    old = [s for s in sim.log if s.src == "c" and s.dest == "a" and decode(s.data, [SECRET]).type is MsgType.LEAVE]
    before = sim.nodes["a"].rejected.copy()
    assert sim.deliver("a", old[0].data) == []
    assert sim.nodes["a"].rejected - before == {"retired": 1}


def test_the_hold_expires_after_h_and_the_member_counts_as_left() -> None:
    sim = converged(["a", "b", "c"])
    t0 = sim.now
    held_leave(sim, "c", offer(1.0, a=[X]))
    sim.run(2.0)
    for n in "ab":
        t = sim.first(n, lambda e: e == MemberDown("c", "left"))
        assert t is not None and t - t0 == pytest.approx(1.0, abs=2 * STEP + sim.latency)
        assert HoldEnded("c", "expired") in sim.events_of(n)
        assert sim.nodes[n].alive() == {"a", "b"} and sim.nodes[n].has_quorum()


def test_end_hold_makes_the_member_dead_at_once() -> None:
    sim = converged(["a", "b", "c"])
    held_leave(sim, "c", offer(a=[X]))
    sim.run(0.5)
    evs = sim.nodes["a"].end_hold("c", sim.now)
    assert evs == [HoldEnded("c", "unreachable"), MemberDown("c", "timeout")]
    assert sim.nodes["a"].alive() == {"a", "b"}
    assert sim.nodes["a"].end_hold("c", sim.now) == []  # once


def test_a_plain_leave_during_the_hold_ends_it() -> None:
    sim = converged(["a", "b", "c"])
    core_c = sim.nodes["c"]
    sim.send("c", core_c.leave(sim.now, offer(a=[X])))
    sim.run(0.2)
    # the same process now leaves for good (a restart that became a stop): a LEAVE with a higher sequence number
    packet = Packet(MsgType.LEAVE, "c", "a", core_c.incarnation, 10_000, 1000, sim.nodes["a"]._seq, b"")
    assert sim.deliver("a", encode(packet, SECRET)) == [HoldEnded("c", "left"), MemberDown("c", "left")]


def test_a_held_member_does_not_count_towards_the_quorum() -> None:
    sim = converged(["a", "b", "c"])
    held_leave(sim, "c", offer(a=[X]))
    sim.run(0.5)
    mark = sim.now
    sim.partition(["a"], ["b"])  # during the hold: each side alone with the held member
    sim.run(1.0)
    # a, the stand-in, keeps c held; b sees the stand-in go, so it ends the hold (``standin_down``)
    assert sim.nodes["a"].alive() == {"a", "c"}
    assert sim.nodes["b"].alive() == {"b"} and HoldEnded("c", "standin_down") in sim.events_of("b", since=mark)
    for n in "ab":
        assert not sim.nodes[n].has_quorum(), n  # 1 live of 3: it withdraws (and stands in for nothing)
    assert QuorumChanged(False, 2, 3) in sim.events_of("a", since=mark)


def test_forged_oversized_and_malformed_holds_change_nothing() -> None:
    sim = converged(["a", "b", "c"])
    a = sim.nodes["a"]
    entry = ENTRY.pack(b"\0" * 8, 1002, 0, 3)

    def leave_from_c(ext: bytes, key: bytes = SECRET) -> bytes:
        return encode(Packet(MsgType.LEAVE, "c", "a", 1002, 10_000, 1000, a._seq, entry + ext), key)

    good = encode_hold(5.0, (LINK,), [X])
    for data, reason in [
        (leave_from_c(good, b"x" * 32), "bad_mac"),
        (leave_from_c(good[:-2]), "bad_hold"),
        (leave_from_c(bytes((1,)) + (MAX_HOLD_MS * 2).to_bytes(4, "big") + good[5:]), "hold_oversized"),
    ]:
        before = a.rejected.copy()
        assert sim.deliver("a", data) == []
        assert a.rejected - before == {reason: 1}
        assert a.alive() == {"a", "b", "c"} and a.held() == {}


def test_a_hold_longer_than_hold_max_is_a_plain_leave() -> None:
    sim = converged(["a", "b", "c"], config=MembershipConfig(hold_max=2.0))
    held_leave(sim, "c", offer(10.0, a=[X]))
    sim.run(0.1)
    assert MemberDown("c", "left") in sim.events_of("a")
    assert sim.nodes["a"].rejected["hold_refused"] >= 1 and sim.nodes["a"].held() == {}


def test_many_ips_go_in_several_datagrams() -> None:
    sim = converged(["a", "b", "c"])
    many = [ip_address(f"fc00::{i:x}") for i in range(3000)]
    out = sim.nodes["c"].leave(sim.now, offer(a=many))
    assert len([d for d in out if d.dest == "a"]) > 2 * 2  # chunks, each in two copies
    sim.send("c", out)
    sim.crashed.add("c")
    sim.run(0.1)
    assert sim.nodes["a"].held()["c"].ips == set(many)
    assert sim.nodes["b"].held()["c"].ips == set()


def test_a_hold_begins_once_however_many_datagrams_carry_it() -> None:
    """``HoldBegun`` (what ``ironlb_membership_holds_begun_total`` counts) comes once a hold on every member, before
    its first ``MemberHeld``: the further datagrams' ``MemberHeld`` only add IPs, a replay adds nothing, and the
    member's next restart is a new hold."""
    sim = converged(["a", "b", "c"])
    many = [ip_address(f"fc00::{i:x}") for i in range(3000)]
    first = sim.nodes["c"].incarnation
    mark = sim.now
    held_leave(sim, "c", offer(a=many, b=[Y]))
    sim.run(0.5)
    for n in "ab":
        holds = [e for e in sim.events_of(n, since=mark) if isinstance(e, HoldBegun | MemberHeld)]
        assert holds[0] == HoldBegun("c", first), n
        assert holds[1:] and all(isinstance(e, MemberHeld) for e in holds[1:]), n
    assert len(sim.events_of("a", MemberHeld, since=mark)) > 1  # the IPs came in several datagrams
    leaves = [s for s in sim.log if s.src == "c" and decode(s.data, [SECRET]).type is MsgType.LEAVE]
    for sent in leaves:
        assert sim.deliver(sent.dest, sent.data) == []
    sim.restart("c", incarnation=4242)
    sim.run(0.5)
    mark = sim.now
    held_leave(sim, "c", offer(a=[X]))
    sim.run(0.5)
    for n in "ab":
        assert sim.events_of(n, HoldBegun, since=mark) == [HoldBegun("c", 4242)], n


def test_the_hold_reaches_non_neighbours_in_a_large_cluster() -> None:
    names = [f"n{i:02d}" for i in range(30)]
    sim = SimNet(names, SECRET, start_spread=0.05)
    sim.run(1.5)
    assert sim.agree()
    leaving = names[7]
    sim.leave(leaving, HoldOffer(5.0, (LINK,), {names[3]: [Y]}))
    mark = sim.now
    sim.run(3.0)
    for n in names:
        if n == leaving:
            continue
        assert leaving in sim.nodes[n].alive(), n
        assert not [e for t, m, e in sim.events if m == n and t >= mark and isinstance(e, MemberDown)], n
    assert sim.nodes[names[3]].held()[leaving].ips == {Y}
    far = [n for n in names if n != leaving and leaving not in sim.nodes[n].neighbours()]
    assert far and all(leaving in sim.nodes[n].held() for n in far)  # by the notice path
    sim.run(2.5)  # past H = 5 s
    assert all(leaving not in sim.nodes[n].alive() for n in names if n != leaving)


def test_an_even_split_around_a_held_member_gives_nobody_the_quorum() -> None:
    """5 members, one held, the other four split 2/2: were the held one counted, each side would see 3 of 5 alive
    and both would announce (split brain). It is not: each side has 2 live members of 5 and withdraws."""
    sim = converged(["a", "b", "c", "d", "e"])
    held_leave(sim, "e", offer(a=[X], b=[Y]))
    sim.run(0.3)
    assert all(sim.nodes[n].has_quorum() for n in "abcd")  # 4 live of 5
    sim.partition(["a", "b"], ["c", "d"])
    sim.run(1.0)
    for n in "ab":  # the stand-ins' side holds e: 3 of 5 in alive(), 2 of them live
        assert "e" in sim.nodes[n].alive() and len(sim.nodes[n].alive()) == 3, n
    for n in "cd":  # the other side saw e's stand-ins go: the hold ended there
        assert sim.nodes[n].alive() == {"c", "d"}, n
    for n in "abcd":
        assert not sim.nodes[n].has_quorum(), n


def ip_electing(names: list[str], first: str, second: str) -> str:
    """An IPv4 address whose election among ``names`` puts ``first`` then ``second`` at the head."""
    for i in range(1, 255):
        ip = f"192.168.1.{i}"
        if sort_candidates(names, ip)[:2] == [first, second]:
            return ip
    raise AssertionError(f"no IP elects {first}, {second}")


def test_the_hold_ends_everywhere_when_a_stand_in_dies_and_the_ips_go_to_the_next_live_node() -> None:
    """a restarts (hold), b stands in for its IP; b dies during the hold: nobody would answer for that IP (nor probe
    a), so every member ends a's hold within about the dead time and the IP goes to its next live candidate."""
    names = ["a", "b", "c", "d"]
    ip = ip_electing(names, "a", "b")
    sim = converged(names)
    held_leave(sim, "a", offer(b=[ip_address(ip)]))
    sim.run(0.3)
    assert all(sim.nodes[n].held()["a"].standins == {"b"} for n in "bcd")
    mark = sim.now
    sim.crashed.add("b")
    sim.run(1.0)
    dead = sim.nodes["c"].config.dead_timeout
    for n in "cd":
        core = sim.nodes[n]
        t = sim.first(n, lambda e: e == HoldEnded("a", "standin_down"), since=mark)
        assert t is not None and t - mark <= dead + 2 * STEP + sim.latency, n
        assert MemberDown("a", "left") in sim.events_of(n, since=mark), n
        assert core.alive() == {"c", "d"} and core.held() == {}, n
        assert sort_candidates(core.alive(), ip)[0] == sort_candidates(["c", "d"], ip)[0]  # the next live one
        assert core.has_quorum() is False  # 2 of 4: the usual rule, unchanged


def test_a_death_of_a_member_that_is_no_stand_in_keeps_the_hold() -> None:
    sim = converged(["a", "b", "c", "d", "e"])
    held_leave(sim, "a", offer(b=[X], c=[Y]))
    sim.run(0.3)
    mark = sim.now
    sim.crashed.add("d")  # no stand-in of a
    sim.run(1.0)
    for n in "bce":
        assert MemberDown("d", "timeout") in sim.events_of(n, since=mark), n
        assert sim.nodes[n].alive() == {"a", "b", "c", "e"} and set(sim.nodes[n].held()) == {"a"}, n
        assert not [e for e in sim.events_of(n, since=mark) if isinstance(e, HoldEnded)], n


def test_a_stand_in_that_restarts_or_is_held_itself_ends_the_hold() -> None:
    sim = converged(["a", "b", "c", "d"])
    held_leave(sim, "a", offer(b=[X], c=[Y]))
    sim.run(0.3)
    mark = sim.now
    sim.restart("b", incarnation=5000)  # a new speaker on b: it knows nothing of a's hold
    sim.run(0.5)
    for n in "cd":
        assert HoldEnded("a", "standin_down") in sim.events_of(n, since=mark), n
        assert "a" not in sim.nodes[n].alive(), n

    sim = converged(["a", "b", "c", "d", "e"])
    held_leave(sim, "a", offer(b=[X]))
    sim.run(0.3)
    mark = sim.now
    held_leave(sim, "b", offer(c=[Y]))  # its stand-in restarts too: it no longer answers for a
    sim.run(0.3)
    for n in "cde":
        assert HoldEnded("a", "standin_down") in sim.events_of(n, since=mark), n
        assert set(sim.nodes[n].held()) == {"b"}, n


def test_a_hold_naming_a_stand_in_already_dead_here_ends_at_once() -> None:
    sim = converged(["a", "b", "c", "d"])
    sim.crashed.add("b")
    sim.run(1.0)
    assert all(sim.nodes[n].alive() == {"a", "c", "d"} for n in "acd")
    # a still names b (its decision predates b's death: a race); everyone else knows b is gone
    held_leave(sim, "a", offer(b=[X], c=[Y]))
    sim.run(0.1)
    for n in "cd":
        assert HoldEnded("a", "standin_down") in sim.events_of(n), n
        assert sim.nodes[n].alive() == {"c", "d"}, n


def test_the_stand_in_names_ride_in_every_destinations_datagrams() -> None:
    keys = [bytes([i]) * 8 for i in range(3)]
    payload = decode_hold(encode_hold(2.0, (LINK,), [X], keys))
    assert payload.standins == tuple(keys) and payload.ips == (X,)
    assert decode_hold(encode_hold(2.0, (LINK,), [X])).standins == ()  # an earlier encoder's hold: none named
    with pytest.raises(HoldError):
        decode_hold(encode_hold(2.0, (LINK,), [X], keys)[:-3])
    many = [ip_address(f"fc00::{i:x}") for i in range(600)]
    parts = list(hold_chunks(many, keys))
    assert parts[0][1] == keys and sum(len(ips) for ips, _ in parts) == 600 and len(parts) > 1


def test_in_a_large_cluster_every_member_ends_the_hold_when_a_stand_in_dies() -> None:
    names = [f"n{i:02d}" for i in range(30)]
    sim = SimNet(names, SECRET, start_spread=0.05)
    sim.run(1.5)
    assert sim.agree()
    leaving, standin, other = names[7], names[3], names[20]
    sim.leave(leaving, HoldOffer(10.0, (LINK,), {standin: [Y]}))
    sim.run(1.0)
    assert all(leaving in sim.nodes[n].held() for n in names if n != leaving)
    mark = sim.now
    sim.crash(other)  # no stand-in: the hold stays
    sim.run(1.5)
    rest = [n for n in names if n not in (leaving, other)]
    assert all(leaving in sim.nodes[n].alive() for n in rest)
    sim.crash(standin)
    sim.run(1.5)
    for n in rest:
        if n == standin:
            continue
        assert leaving not in sim.nodes[n].alive() and sim.nodes[n].held() == {}, n
        assert [e for t, m, e in sim.events if m == n and t >= mark and isinstance(e, HoldEnded)] == [
            HoldEnded(leaving, "standin_down")
        ], n
