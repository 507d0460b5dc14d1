"""Tests of the sans-I/O membership core with simulated time and a simulated network."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb.membership import (
    Event,
    MemberDown,
    Membership,
    MembershipConfig,
    MemberUp,
    QuorumChanged,
    parse_members,
)
from ironlb.membership.wire import MAC_LEN, MsgType, Packet, decode, encode

SECRET = b"s3cret-s3cret-s3cret-32-bytes..."
CFG = MembershipConfig()  # the defaults: 100 ms interval, 350 ms dead timeout
STEP = 0.005


def addr_of(i: int) -> tuple[str, int]:
    return (f"10.0.0.{i + 1}", 7946)


@dataclass
class Sent:
    at: float
    src: str
    dest: str
    data: bytes


@dataclass
class Sim:
    """Nodes on a simulated LAN: fixed latency, optional link blocks, crashed nodes."""

    names: list[str]
    config: MembershipConfig = CFG
    latency: float = 0.001
    now: float = 0.0
    nodes: dict[str, Membership] = field(default_factory=dict)
    crashed: set[str] = field(default_factory=set)
    blocked: set[tuple[str, str]] = field(default_factory=set)  # directed (src, dest)
    inflight: list[Sent] = field(default_factory=list)
    log: list[Sent] = field(default_factory=list)
    events: list[tuple[float, str, Event]] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)  # neither ticks nor reads (a stalled loop)

    def __post_init__(self) -> None:
        self.members = {n: addr_of(i) for i, n in enumerate(self.names)}
        self.by_addr = {a: n for n, a in self.members.items()}
        for i, n in enumerate(self.names):
            self.nodes[n] = Membership(n, SECRET, self.members, self.config, incarnation=1000 + i)

    def restart(self, name: str, incarnation: int) -> None:
        self.crashed.discard(name)
        self.nodes[name] = Membership(
            name,
            SECRET,
            self.nodes[name].members() | {name: self.members[name]},
            self.config,
            incarnation=incarnation,
        )

    def partition(self, *groups: Iterable[str]) -> None:
        sides = [set(g) for g in groups]
        self.blocked = {
            (a, b) for i, g in enumerate(sides) for j, h in enumerate(sides) if i != j for a in g for b in h
        }

    def send(self, src: str, datagrams: Iterable[tuple[bytes, tuple[str, int], str]]) -> None:
        for data, addr, dest in datagrams:
            assert self.by_addr[addr] == dest
            sent = Sent(self.now + self.latency, src, dest, data)
            self.log.append(sent)
            if (src, dest) not in self.blocked:
                self.inflight.append(sent)

    def deliver(self, dest: str, data: bytes, src_addr: tuple[str, int] = ("192.0.2.1", 9)) -> list[Event]:
        evs = self.nodes[dest].datagram_received(data, src_addr, self.now)
        self.events += [(self.now, dest, e) for e in evs]
        return evs

    def run(self, duration: float) -> None:
        end = self.now + duration
        while self.now < end - 1e-9:
            self.now = round(self.now + STEP, 9)
            due = [s for s in self.inflight if s.at <= self.now and s.dest not in self.paused]
            self.inflight = [s for s in self.inflight if s not in due]
            for s in due:
                if s.dest not in self.crashed:
                    self.deliver(s.dest, s.data, self.members[s.src])
            for name, node in self.nodes.items():
                if name in self.crashed or name in self.paused:
                    continue
                out, evs = node.tick(self.now)
                self.events += [(self.now, name, e) for e in evs]
                self.send(name, out)

    def events_of(self, node: str, kind: type[Event] | None = None, since: float = 0.0) -> list[Event]:
        return [e for t, n, e in self.events if n == node and t >= since and (kind is None or isinstance(e, kind))]

    def first(self, node: str, pred: Callable[[Event], bool], since: float = 0.0) -> float | None:
        for t, n, e in self.events:
            if n == node and t >= since and pred(e):
                return t
        return None

    def leave(self, name: str) -> None:
        self.send(name, self.nodes[name].leave(self.now))


def full_state(m: Membership) -> object:
    """Everything a datagram could change, to assert rejected input changed nothing."""
    peers = {n: (p.inc, p.seq, p.alive, p.expires, p.view, p.reply_due, tuple(p.retired)) for n, p in m._peers.items()}
    return (m.alive(), m.has_quorum(), m.settled(), peers)


def converged(names: list[str], **kw: object) -> Sim:
    sim = Sim(names, **kw)  # type: ignore[arg-type]
    sim.run(0.3)
    for n in names:
        assert sim.nodes[n].alive() == frozenset(names), n
    return sim


# --------------------------------------------------------------- basic liveness


def test_startup_converges_within_two_intervals() -> None:
    sim = Sim(["a", "b", "c"])
    assert not sim.nodes["a"].has_quorum()
    assert not sim.nodes["a"].settled()
    sim.run(0.2)
    for n in "abc":
        assert sim.nodes[n].alive() == {"a", "b", "c"}
        assert sim.nodes[n].has_quorum()
        assert sim.nodes[n].settled()
        ups = {e.name for e in sim.events_of(n, MemberUp) if isinstance(e, MemberUp)}
        assert ups == {"a", "b", "c"} - {n}
        assert sim.events_of(n, QuorumChanged) == [QuorumChanged(True, 2, 3)]
    assert all(isinstance(e, MemberUp | QuorumChanged) for _, _, e in sim.events)


def test_steady_state_has_no_flapping() -> None:
    sim = converged(["a", "b", "c"])
    mark = sim.now
    sim.run(5.0)
    assert [e for t, _, e in sim.events if t > mark] == []
    # one heartbeat per peer per interval, no more
    sent = [s for s in sim.log if s.at > mark and s.src == "a"]
    assert len(sent) <= 2 * (5.0 / CFG.interval + 1)


def test_crash_detected_within_dead_timeout() -> None:
    sim = converged(["a", "b", "c"])
    t0 = sim.now
    sim.crashed.add("c")
    sim.run(1.0)
    for n in "ab":
        t = sim.first(n, lambda e: e == MemberDown("c", "timeout"))
        assert t is not None
        # The last heartbeat arrived at most one interval before the crash.
        assert CFG.dead_timeout - CFG.interval - STEP <= t - t0 <= CFG.dead_timeout + STEP
        assert sim.nodes[n].alive() == {"a", "b"}
        assert sim.nodes[n].has_quorum()


def test_tunable_intervals() -> None:
    cfg = MembershipConfig(interval=0.02, dead_timeout=0.07)
    sim = converged(["a", "b", "c"], config=cfg)
    t0 = sim.now
    sim.crashed.add("b")
    sim.run(0.5)
    t = sim.first("a", lambda e: e == MemberDown("b", "timeout"))
    assert t is not None and t - t0 <= 0.07 + STEP


def test_leave_is_immediate() -> None:
    sim = converged(["a", "b", "c"])
    t0 = sim.now
    sim.leave("c")
    sim.crashed.add("c")
    sim.run(0.1)
    for n in "ab":
        t = sim.first(n, lambda e: e == MemberDown("c", "left"))
        assert t is not None and t - t0 <= sim.latency + STEP
        assert len(sim.events_of(n, MemberDown)) == 1  # the second LEAVE copy is ignored
    left = sim.nodes["c"]
    assert left.left and left.alive() == frozenset() and not left.has_quorum()
    assert left.tick(sim.now) == ([], [])
    assert left.leave(sim.now) == []
    assert left.next_deadline() == float("inf")


def test_leave_without_liveness_and_lost_leave_falls_back_to_timeout() -> None:
    sim = converged(["a", "b", "c"])
    sim.blocked = {("c", "a")}
    t0 = sim.now
    sim.leave("c")
    sim.crashed.add("c")
    sim.run(0.5)
    assert sim.first("b", lambda e: e == MemberDown("c", "left")) is not None
    t = sim.first("a", lambda e: e == MemberDown("c", "timeout"))
    assert t is not None and t - t0 <= CFG.dead_timeout + STEP


def test_restart_with_new_incarnation_is_accepted() -> None:
    sim = converged(["a", "b", "c"])
    sim.crashed.add("c")
    sim.run(0.05)  # well before the timeout
    mark = sim.now
    sim.restart("c", incarnation=777)
    sim.run(0.3)
    for n in "ab":
        evs = sim.events_of(n, since=mark)
        assert evs == [MemberDown("c", "restarted"), MemberUp("c", 777)], n
        assert sim.nodes[n].alive() == {"a", "b", "c"}
    assert sim.nodes["c"].alive() == {"a", "b", "c"}


def test_restart_after_being_declared_dead() -> None:
    sim = converged(["a", "b", "c"])
    sim.crashed.add("c")
    sim.run(1.0)
    mark = sim.now
    sim.restart("c", incarnation=5)
    sim.run(0.3)
    assert sim.events_of("a", since=mark) == [MemberUp("c", 5)]


def test_rejoin_after_leave() -> None:
    sim = converged(["a", "b", "c"])
    sim.leave("c")
    sim.crashed.add("c")
    sim.run(0.2)
    mark = sim.now
    sim.restart("c", incarnation=99)
    sim.run(0.3)
    assert sim.events_of("a", since=mark) == [MemberUp("c", 99)]


def test_random_incarnations_by_default() -> None:
    a = Membership("a", SECRET, {"b": addr_of(1)})
    b = Membership("a", SECRET, {"b": addr_of(1)})
    assert a.incarnation != b.incarnation
    assert 0 < a.incarnation < 1 << 64


# ----------------------------------------------------------- hostile datagrams


def forged(key: bytes, **kw: object) -> bytes:
    fields: dict[str, object] = dict(
        type=MsgType.HEARTBEAT,
        sender="c",
        dest="a",
        incarnation=1002,
        seq=10**6,
        echo_incarnation=1000,
        echo_seq=1,
    )
    fields.update(kw)
    return encode(Packet(**fields), key)  # type: ignore[arg-type]


def test_wrong_secret_forged_and_truncated_change_nothing() -> None:
    sim = converged(["a", "b", "c"])
    sim.crashed.add("c")
    sim.run(1.0)  # c is down at a
    a = sim.nodes["a"]
    # Take a real, fresh packet b -> a as a template for tampering.
    _out, _ = sim.nodes["b"].tick(sim.now + 1.0)  # forces a heartbeat
    genuine = next(d.data for d in _out if d.dest == "a")
    before = full_state(a)
    bad = [
        forged(b"wrong-key-wrong-key-wrong-key!!"),  # wrong secret
        forged(SECRET)[:-1],  # truncated
        forged(SECRET)[:40],
        b"",
        b"IL",
        genuine[:-MAC_LEN] + bytes(MAC_LEN),  # MAC zeroed
        genuine[:20] + bytes([genuine[20] ^ 1]) + genuine[21:],  # flipped bit in the echo
        b"\0" * 200,
    ]
    for data in bad:
        assert sim.deliver("a", data) == []
        assert full_state(a) == before
    assert a.alive() == {"a", "b"}
    assert a.rejected["bad_mac"] == 3 and a.rejected["malformed"] == 5


def test_authentic_but_misaddressed_packets_change_nothing() -> None:
    sim = converged(["a", "b", "c"])
    a = sim.nodes["a"]
    before = full_state(a)
    assert sim.deliver("a", forged(SECRET, dest="b")) == []
    assert sim.deliver("a", forged(SECRET, sender="a")) == []  # claims to be us
    assert sim.deliver("a", forged(SECRET, sender="mallory")) == []  # not a member
    assert full_state(a) == before
    assert a.rejected["wrong_dest"] == 1 and a.rejected["unknown_sender"] == 2


def test_replayed_heartbeats_do_not_revive_a_dead_member() -> None:
    sim = converged(["a", "b", "c"])
    sim.run(0.5)
    captured = [s for s in sim.log if s.src == "c" and s.dest == "a"]
    sim.crashed.add("c")
    t0 = sim.now
    # The attacker replays everything c ever sent to a, over and over, while c is dead.
    for _ in range(10):
        for s in captured:
            sim.deliver("a", s.data)
        sim.run(0.1)
    t = sim.first("a", lambda e: e == MemberDown("c", "timeout"))
    assert t is not None and t - t0 <= CFG.dead_timeout + STEP
    assert "c" not in sim.nodes["a"].alive()
    assert sim.events_of("a", MemberUp, since=t0) == []


def test_replay_to_a_restarted_receiver_is_useless() -> None:
    """The receiver lost its state; old captures still fail (they echo the old incarnation)."""
    sim = converged(["a", "b", "c"])
    captured = [s for s in sim.log if s.src == "c" and s.dest == "a"]
    sim.crashed.add("c")
    sim.restart("a", incarnation=4242)
    mark = sim.now
    for s in captured:
        sim.deliver("a", s.data)
    sim.run(1.0)
    for s in captured[-5:]:
        sim.deliver("a", s.data)
    assert "c" not in sim.nodes["a"].alive()
    assert sim.events_of("a", MemberUp, since=mark) == [MemberUp("b", 1001)]


def test_replayed_leave_of_an_old_incarnation_is_ignored() -> None:
    sim = converged(["a", "b", "c"])
    mark = len(sim.log)
    sim.leave("c")
    old_leaves = [s.data for s in sim.log[mark:] if s.dest == "a"]
    sim.crashed.add("c")
    sim.run(0.2)
    sim.restart("c", incarnation=31337)
    sim.run(0.3)
    assert "c" in sim.nodes["a"].alive()
    before = full_state(sim.nodes["a"])
    for data in old_leaves:
        assert sim.deliver("a", data) == []
    assert full_state(sim.nodes["a"]) == before
    assert sim.nodes["a"].rejected["retired"] >= 1


def test_replay_of_a_recent_packet_is_rejected_by_sequence() -> None:
    sim = converged(["a", "b", "c"])
    last = [s for s in sim.log if s.src == "b" and s.dest == "a"][-1]
    before = full_state(sim.nodes["a"])
    assert sim.deliver("a", last.data) == []
    assert full_state(sim.nodes["a"]) == before
    assert sim.nodes["a"].rejected["replay"] == 1


@pytest.mark.parametrize("delay", [0.1, 0.25, 0.5])
def test_delayed_packet_extends_life_by_at_most_one_window(delay: float) -> None:
    """An on-path attacker holding back c's last heartbeat cannot stretch c's life much.

    The held packet echoes a packet a sent before c died, so it is accepted only while
    that echo is younger than dead_timeout: c is down by crash + 2 * dead_timeout.
    """
    sim = converged(["a", "b", "c"])
    while not any(s.src == "c" and s.dest == "a" for s in sim.inflight):
        sim.run(STEP)
    held = next(s for s in sim.inflight if s.src == "c" and s.dest == "a")
    sim.inflight.remove(held)
    sim.crashed.add("c")
    t0 = sim.now
    sim.run(delay)
    evs = sim.deliver("a", held.data)
    sim.run(1.5)
    assert "c" not in sim.nodes["a"].alive()
    downs = [t for t, n, e in sim.events if n == "a" and t >= t0 and isinstance(e, MemberDown)]
    assert downs and max(downs) - t0 <= 2 * CFG.dead_timeout + STEP
    if delay > CFG.dead_timeout:
        assert evs == [] and len(downs) == 1 and downs[0] - t0 <= CFG.dead_timeout + STEP
        assert sim.nodes["a"].rejected["stale"] >= 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzzed_datagrams_never_raise_or_change_state(data: bytes) -> None:
    m = Membership("a", SECRET, {"a": addr_of(0), "b": addr_of(1), "c": addr_of(2)}, incarnation=1)
    m.tick(0.0)
    before = full_state(m)
    assert m.datagram_received(data, None, 0.01) == []
    assert full_state(m) == before


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_authentic_bodies_never_raise(body: bytes) -> None:
    m = Membership("a", SECRET, {"b": addr_of(1)}, incarnation=1)
    m.tick(0.0)
    raw = b"IL\x01" + body
    m.datagram_received(raw + hmac.digest(SECRET, raw, hashlib.sha256), None, 0.01)


# ------------------------------------------------------------------ partitions


def test_partition_majority_keeps_quorum_minority_withdraws() -> None:
    names = ["a", "b", "c", "d", "e"]
    sim = converged(names)
    t0 = sim.now
    sim.partition(["a", "b", "c"], ["d", "e"])
    sim.run(1.0)
    for n in "abc":
        assert sim.nodes[n].alive() == {"a", "b", "c"} and sim.nodes[n].has_quorum()
    for n in "de":
        assert sim.nodes[n].alive() == {"d", "e"} and not sim.nodes[n].has_quorum()
        t = sim.first(n, lambda e: e == QuorumChanged(False, 2, 5))
        assert t is not None and t - t0 <= CFG.dead_timeout + STEP
    # Overlap where both sides would announce: from the first majority takeover to the
    # last minority withdrawal. Bounded by about one interval.
    takeover = min(t for t, n, e in sim.events if n in "abc" and isinstance(e, MemberDown) and t >= t0)
    withdraw = max(t for t, n, e in sim.events if n in "de" and isinstance(e, QuorumChanged))
    assert withdraw - takeover <= CFG.interval + 2 * STEP
    # Heal: everybody back, quorum regained within a couple of intervals.
    sim.blocked = set()
    mark = sim.now
    sim.run(0.3)
    for n in names:
        assert sim.nodes[n].alive() == set(names) and sim.nodes[n].has_quorum()
    assert sim.events_of("d", QuorumChanged, since=mark) == [QuorumChanged(True, 3, 5)]


def test_isolated_node_of_three_withdraws() -> None:
    sim = converged(["a", "b", "c"])
    sim.partition(["a", "b"], ["c"])
    sim.run(0.5)
    assert sim.nodes["a"].has_quorum() and sim.nodes["b"].has_quorum()
    assert not sim.nodes["c"].has_quorum() and sim.nodes["c"].alive() == {"c"}


def test_even_split_leaves_nobody_with_quorum() -> None:
    sim = converged(["a", "b", "c", "d"])
    sim.partition(["a", "b"], ["c", "d"])
    sim.run(0.5)
    assert not any(m.has_quorum() for m in sim.nodes.values())


def test_two_nodes_auto_keeps_announcing_when_split() -> None:
    sim = converged(["a", "b"])
    assert sim.nodes["a"].has_quorum()
    sim.partition(["a"], ["b"])
    sim.run(0.5)
    assert sim.nodes["a"].has_quorum() and sim.nodes["b"].has_quorum()  # documented split brain
    assert sim.events_of("a", QuorumChanged) == []


def test_two_nodes_quorum_on_withdraws_when_split() -> None:
    sim = converged(["a", "b"], config=MembershipConfig(quorum="on"))
    assert sim.nodes["a"].has_quorum()
    sim.partition(["a"], ["b"])
    sim.run(0.5)
    assert not sim.nodes["a"].has_quorum() and not sim.nodes["b"].has_quorum()


def test_quorum_off_keeps_minority_announcing() -> None:
    sim = converged(["a", "b", "c"], config=MembershipConfig(quorum="off"))
    sim.partition(["a", "b"], ["c"])
    sim.run(0.5)
    assert sim.nodes["c"].has_quorum() and sim.nodes["c"].alive() == {"c"}


def test_isolated_node_keeps_bounded_state() -> None:
    m = Membership("a", SECRET, {"b": addr_of(1), "c": addr_of(2)}, incarnation=1)
    now = 0.0
    for _ in range(10_000):
        now += CFG.interval
        m.tick(now)
    assert len(m._sent) <= CFG.dead_timeout / CFG.interval + 2


def test_single_node_always_has_quorum() -> None:
    m = Membership("solo", SECRET, {"solo": addr_of(0)})
    assert m.has_quorum() and m.settled() and m.alive() == {"solo"}
    assert m.tick(0.0) == ([], [])


def test_one_way_loss_is_seen_by_both_sides() -> None:
    sim = converged(["a", "b", "c"])
    sim.blocked = {("a", "b")}  # b still hears nothing from a; a still hears b
    sim.run(0.6)
    assert "b" not in sim.nodes["a"].alive()
    assert "a" not in sim.nodes["b"].alive()
    assert sim.nodes["c"].alive() == {"a", "b", "c"}


def test_views_are_reported() -> None:
    sim = converged(["a", "b", "c"])
    views = sim.nodes["a"].views()
    assert views == {n: frozenset("abc") for n in "abc"}
    sim.partition(["a", "b"], ["c"])
    sim.run(0.5)
    assert sim.nodes["a"].views() == {"a": frozenset("ab"), "b": frozenset("ab")}


def test_views_can_be_disabled() -> None:
    sim = converged(["a", "b", "c"], config=MembershipConfig(carry_views=False))
    assert sim.nodes["a"].views() == {"a": frozenset("abc")}


# -------------------------------------------------------------- member changes


def test_members_added_and_removed_at_run_time() -> None:
    sim = Sim(["a", "b", "c", "d"])
    three = {n: sim.members[n] for n in "abc"}
    for n in "abc":
        sim.nodes[n].set_members(three)
    sim.crashed.add("d")
    sim.run(0.3)
    assert sim.nodes["a"].alive() == {"a", "b", "c"}
    # d joins: everybody learns about it.
    sim.crashed.discard("d")
    mark = sim.now
    for n in "abcd":
        sim.events += [(sim.now, n, e) for e in sim.nodes[n].set_members(sim.members)]
    sim.run(0.2)
    for n in "abcd":
        assert sim.nodes[n].alive() == {"a", "b", "c", "d"}
    assert sim.events_of("a", since=mark) == [MemberUp("d", 1003)]
    # c is removed from the list: down with reason "removed", no more packets to it.
    two = {n: sim.members[n] for n in "abd"}
    evs = sim.nodes["a"].set_members(two)
    assert evs == [MemberDown("c", "removed")]
    assert sim.nodes["a"].members() == {n: sim.members[n] for n in "bd"}
    out, _ = sim.nodes["a"].tick(sim.now + 1.0)
    assert {d.dest for d in out} == {"b", "d"}


def test_removal_changes_the_quorum_denominator() -> None:
    sim = converged(["a", "b", "c", "d", "e"])
    sim.crashed |= {"d", "e"}
    sim.run(0.5)
    assert sim.nodes["a"].has_quorum()  # 3 of 5
    sim.crashed.add("c")
    sim.run(0.5)
    assert not sim.nodes["a"].has_quorum()  # 2 of 5
    evs = sim.nodes["a"].set_members({n: sim.members[n] for n in "abc"})
    assert evs == [QuorumChanged(True, 2, 3)]


def test_address_change_keeps_state() -> None:
    sim = converged(["a", "b", "c"])
    moved = dict(sim.members)
    moved["b"] = ("10.9.9.9", 7000)
    assert sim.nodes["a"].set_members(moved) == []
    assert sim.nodes["a"].alive() == {"a", "b", "c"}
    out, _ = sim.nodes["a"].tick(sim.now + 1.0)
    assert ("10.9.9.9", 7000) in {d.addr for d in out}


def test_settled_after_timeout_even_if_members_are_absent() -> None:
    sim = Sim(["a", "b", "c"])
    sim.crashed |= {"b", "c"}
    sim.run(CFG.dead_timeout - 0.05)
    assert not sim.nodes["a"].settled()
    sim.run(0.1)
    assert sim.nodes["a"].settled() and not sim.nodes["a"].has_quorum()


# --------------------------------------------------------------- local stalls


def test_local_stall_does_not_declare_live_peers_dead() -> None:
    sim = converged(["a", "b", "c"])
    sim.paused.add("a")
    sim.run(0.6)  # a's loop is blocked; packets for it queue up
    sim.paused.clear()
    mark = sim.now
    sim.run(0.5)
    assert sim.events_of("a", since=mark) == []
    assert sim.nodes["a"].alive() == {"a", "b", "c"} and sim.nodes["a"].stalls == 1


def test_persistently_late_ticks_still_detect_deaths() -> None:
    sim = converged(["a", "b", "c"])
    a = sim.nodes["a"]
    sim.crashed.add("c")
    sim.paused.add("a")
    t0 = sim.now
    down_at = None
    while sim.now < t0 + 3.0 and down_at is None:
        sim.run(0.25)  # a only gets a turn every 250 ms
        sim.paused.discard("a")
        sim.run(STEP)
        sim.paused.add("a")
        if "c" not in a.alive():
            down_at = sim.now
    assert down_at is not None and down_at - t0 <= 4 * CFG.dead_timeout
    assert "b" in a.alive()


# ------------------------------------------------------------ API and config


def test_next_deadline_drives_the_loop() -> None:
    m = Membership("a", SECRET, {"b": addr_of(1)}, incarnation=1)
    assert m.next_deadline() == float("-inf")
    out, _ = m.tick(10.0)
    assert [d.dest for d in out] == ["b"]
    assert 10.0 < m.next_deadline() <= 10.0 + CFG.interval
    assert m.tick(10.01) == ([], [])  # nothing due yet


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        MembershipConfig(interval=0)
    with pytest.raises(ValueError):
        MembershipConfig(interval=0.1, dead_timeout=0.15)
    with pytest.raises(ValueError):
        MembershipConfig(quorum="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MembershipConfig(leave_copies=0)
    with pytest.raises(ValueError):
        Membership("a", b"short", {})
    with pytest.raises(ValueError):
        Membership("a", [], {})
    with pytest.raises(ValueError):
        Membership("a", SECRET, {"b": ("node-b.example", 7946)})  # literal IPs only
    with pytest.raises(ValueError):
        Membership("", SECRET, {})


def run_pair(a: Membership, b: Membership, until: float = 0.5) -> None:
    now = 0.0
    while now < until:
        now += 0.05
        for src, dst in ((a, b), (b, a)):
            for d in src.tick(now).datagrams:
                dst.datagram_received(d.data, None, now)


def test_rolling_key_change() -> None:
    """Step 1: every node accepts the new key. Step 2: nodes sign with it, one by one."""
    new = b"n" * 32
    a = Membership("a", [SECRET, new], {"b": addr_of(1)}, incarnation=1)  # step 1 done
    b = Membership("b", [new, SECRET], {"a": addr_of(0)}, incarnation=2)  # step 2 done
    run_pair(a, b)
    assert a.alive() == b.alive() == {"a", "b"}
    assert decode(b.tick(9.0).datagrams[0].data, [new]).sender == "b"
    # Signing with a key the peer does not accept yet breaks both directions (liveness
    # needs round trips), which is why step 1 must finish everywhere first.
    c = Membership("a", [new], {"b": addr_of(1)}, incarnation=3)
    d = Membership("b", [SECRET], {"a": addr_of(0)}, incarnation=4)
    run_pair(c, d)
    assert c.alive() == {"a"} and d.alive() == {"b"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("a=10.0.0.1", {"a": ("10.0.0.1", 7946)}),
        ("a=10.0.0.1:7000, b=10.0.0.2", {"a": ("10.0.0.1", 7000), "b": ("10.0.0.2", 7946)}),
        ("a=[fd00::1]:7000,b=fd00::2,", {"a": ("fd00::1", 7000), "b": ("fd00::2", 7946)}),
        ("a=[fd00::1]", {"a": ("fd00::1", 7946)}),
        ("", {}),
    ],
)
def test_parse_members(spec: str, expected: dict[str, tuple[str, int]]) -> None:
    assert parse_members(spec) == expected


@pytest.mark.parametrize(
    "spec", ["a", "a=", "=10.0.0.1", "a=10.0.0.1,a=10.0.0.2", "a=host:1", "a=10.0.0.1:0", "a=[fd00::1", "a=1.2.3.4:x"]
)
def test_parse_members_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_members(spec)


def test_a_node_that_first_knew_only_itself_settles_again_when_it_learns_the_others() -> None:
    # A speaker starts with itself only (settled at once: nobody to wait for), then discovery names the others:
    # until they are heard from or dead_timeout passes, it must not count as settled, or it would announce alone.
    m = Membership("a", SECRET, {"a": addr_of(0)})
    m.tick(0.0)
    assert m.settled()
    m.set_members({"a": addr_of(0), "b": addr_of(1), "c": addr_of(2)})
    assert not m.settled()
    m.tick(CFG.dead_timeout - 0.05)
    assert not m.settled()
    m.tick(CFG.dead_timeout + 0.05)
    assert m.settled()
    # Later changes of an already populated list do not restart settling (that would withdraw every announcement).
    m.set_members({"a": addr_of(0), "b": addr_of(1), "c": addr_of(2), "d": addr_of(3)})
    assert m.settled()
