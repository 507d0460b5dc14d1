"""Settling (``membership/settle.py``, issue 9): a starting node announces only from a complete view.

Driven on ``SimNet`` (simulated clock and network). "Claims" are what a node would answer ARP/NDP for: the IPs it
wins in MetalLB's election (smallest ``sha256(node#ip)``) over its alive set, while it may announce (quorum and
settled, as ``ironlb run`` and ``ironlb speaker`` gate it).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Collection

import pytest

from ironlb.membership import MembershipConfig
from ironlb.membership.heartbeat import FLAG_SETTLED, parse_heartbeat, split_view
from ironlb.membership.settle import SETTLE_BOUND
from ironlb.membership.simulation import SimNet
from ironlb.membership.wire import MsgType, decode

SECRET = b"settle-settle-settle-32-bytes..."
CFG = MembershipConfig()
DEAD = CFG.dead_timeout
BOUND = SETTLE_BOUND * DEAD
IPS = [f"192.168.1.{i}" for i in range(1, 129)]
STEP = 0.005


def owner(live: Collection[str], ip: str) -> str:
    return min(live, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


@functools.cache
def won(node: str, alive: frozenset[str]) -> frozenset[str]:
    return frozenset(ip for ip in IPS if owner(alive, ip) == node)


def claims(sim: SimNet, node: str) -> frozenset[str]:
    """The IPs ``node`` would announce now (nothing while it may not announce)."""
    m = sim.nodes[node]
    if not (m.settled() and m.has_quorum()):
        return frozenset()
    return won(node, m.alive())


def converged(names: list[str], **kw: object) -> SimNet:
    sim = SimNet(names, SECRET, **kw)  # type: ignore[arg-type]
    sim.run(1.0)
    assert sim.agree(expected=frozenset(names)) and all(m.settled() for m in sim.nodes.values())
    return sim


def watch(sim: SimNet, duration: float, check: Callable[[], None]) -> None:
    """Run ``duration`` seconds, calling ``check`` every ``STEP``."""
    end = sim.now + duration
    while sim.now < end - 1e-9:
        sim.run(STEP)
        check()


def drop_from(sim: SimNet, src: str, dest: str, until: float) -> None:
    """Everything ``src`` sends ``dest`` is lost until ``until`` (simulated time)."""
    sim.drop = lambda s, d, _data: s == src and d == dest and sim.now < until


def test_a_joiner_never_claims_the_ips_of_an_owner_it_has_not_heard_yet() -> None:
    """c restarts while a (an owner of IPs) is alive, and a's datagrams to c are lost for 0.5 s (longer than the
    dead timeout, shorter than the bound): c hears b, whose view lists a, so c waits for a instead of announcing
    a's IPs from {b, c} (which has quorum). It settles as soon as a is heard."""
    names = ["a", "b", "c"]
    sim = converged(names)
    true = {n: {ip for ip in IPS if owner(names, ip) == n} for n in names}
    assert all(true.values())
    start = sim.now
    drop_from(sim, "a", "c", start + 0.5)
    sim.restart("c")
    c = sim.nodes["c"]
    incomplete_after_dead_timeout = False

    def check() -> None:
        nonlocal incomplete_after_dead_timeout
        assert claims(sim, "c") <= true["c"], (sim.now - start, c.alive())
        if sim.now - start > DEAD and "a" not in c.alive() and c.has_quorum():
            incomplete_after_dead_timeout = True  # the old rule (settle at dead_timeout) claimed a's IPs here

    watch(sim, 1.0, check)
    assert incomplete_after_dead_timeout
    assert c.settled() and c.alive() == set(names)
    assert claims(sim, "c") == true["c"]


def test_a_joiner_settles_when_the_missing_owner_is_heard() -> None:
    names = ["a", "b", "c"]
    sim = converged(names)
    start = sim.now
    drop_from(sim, "a", "c", start + 0.5)
    sim.restart("c")
    c = sim.nodes["c"]
    took = sim.run_until(c.settled, 2.0, step=STEP)
    assert took is not None and 0.5 <= took < 0.5 + 2 * CFG.interval, took
    assert c.alive() == set(names)


def test_a_joiner_in_a_large_cluster_waits_for_the_table_not_only_its_neighbours() -> None:
    """Above full_mesh_max a joiner hears its ring neighbours first (9 of 16: a quorum) and learns the others from
    the table a moment later; it must not announce from the neighbours alone."""
    names = [f"n{i:02d}" for i in range(16)]
    sim = converged(names)
    true = {n: {ip for ip in IPS if owner(names, ip) == n} for n in names}
    joiner = names[5]
    assert len(sim.nodes[joiner].neighbours()) < len(names) - 1  # rings, not a full mesh
    sim.restart(joiner)
    m = sim.nodes[joiner]
    watch(sim, 2.0, lambda: assert_claims_within(sim, joiner, true[joiner]))
    assert m.settled() and m.alive() == set(names)


def assert_claims_within(sim: SimNet, node: str, allowed: set[str]) -> None:
    claimed = claims(sim, node)
    assert claimed <= allowed, (sim.now, sorted(sim.nodes[node].alive()), len(claimed - allowed))


def test_a_joiner_does_not_wait_for_a_member_a_settled_peer_reports_down() -> None:
    """c crashed long ago; a restarts and hears b, settled, whose view lacks c: c is down, not unheard, so a settles
    at once rather than after the dead timeout."""
    names = ["a", "b", "c"]
    sim = converged(names)
    sim.crash("c")
    sim.run(1.0)
    sim.restart("a")
    took = sim.run_until(sim.nodes["a"].settled, 2.0, step=STEP)
    assert took is not None and took < DEAD / 2, took
    assert sim.nodes["a"].alive() == {"a", "b"} and sim.nodes["a"].has_quorum()


def test_a_joiner_settles_by_the_bound_even_if_a_member_others_see_never_answers_it() -> None:
    """b sees a, c does not (a broken link a-c): c waits for a, but only up to the bound, never for ever."""
    names = ["a", "b", "c"]
    sim = converged(names)
    sim.restart("c")
    sim.blocked = {("a", "c"), ("c", "a")}
    c = sim.nodes["c"]
    sim.run(DEAD + 0.05)
    assert not c.settled()
    took = sim.run_until(c.settled, 1.0, step=STEP)
    assert took is not None and DEAD + 0.05 + took <= BOUND + 0.01
    assert c.alive() == {"b", "c"}


@pytest.mark.parametrize("size", [3, 5, 16])
def test_a_cold_start_gives_every_ip_exactly_one_owner_within_the_bound(size: int) -> None:
    """Every node starts at once (within 50 ms): nobody is settled to vouch for anybody, so each waits until it
    heard the others (above full_mesh_max: until its table holds what its neighbours see). At no moment do two
    nodes claim one IP, and within the bound every IP has its owner."""
    names = [f"n{i:02d}" for i in range(size)]
    sim = SimNet(names, SECRET, start_spread=0.05, seed=size)

    def check() -> None:
        owned: dict[str, str] = {}
        for n in names:
            for ip in claims(sim, n):
                assert ip not in owned, (sim.now, ip, owned[ip], n)
                owned[ip] = n

    watch(sim, 0.05 + BOUND, check)
    assert {ip: n for n in names for ip in claims(sim, n)} == {ip: owner(names, ip) for ip in IPS}


def test_a_cold_start_with_a_member_down_waits_no_longer_than_the_dead_timeout() -> None:
    """c never starts: a and b hear each other, but neither has settled, so neither can vouch that c is down; with
    no evidence that c is alive they settle after the dead timeout, as before, and share every IP."""
    names = ["a", "b", "c"]
    sim = SimNet(names, SECRET)
    sim.crash("c")
    took = sim.run_until(lambda: all(sim.nodes[n].settled() for n in "ab"), 2.0, step=STEP)
    assert took is not None and DEAD <= took < DEAD + 2 * STEP, took
    live = ["a", "b"]
    assert {ip: n for n in live for ip in claims(sim, n)} == {ip: owner(live, ip) for ip in IPS}


def test_a_node_alone_is_settled_at_once() -> None:
    sim = SimNet(["solo"], SECRET)
    assert sim.nodes["solo"].settled()
    sim.run(0.001)
    assert claims(sim, "solo") == set(IPS)


def test_heartbeats_say_whether_their_sender_has_settled() -> None:
    names = ["a", "b", "c"]
    sim = SimNet(names, SECRET, record=True)
    sim.crash("c")
    sim.run(2 * DEAD)
    flags = []
    for at, src, _dest, data in sim.log:
        if src != "a":
            continue
        pkt = decode(data, [SECRET])
        hb = parse_heartbeat(pkt.payload)
        assert hb is not None
        _bits, flag = split_view(len(names), hb.view_bits)
        assert flag is not None
        flags.append((at, bool(flag & FLAG_SETTLED)))
    assert flags[0] == (0.0, False) and flags[-1][1]
    switched = [at for (at, f), (_, g) in zip(flags, flags[1:], strict=False) if f != g]
    assert len(switched) == 1
    # views() reports what it did before: each peer's alive set
    assert sim.nodes["a"].views() == {"a": frozenset("ab"), "b": frozenset("ab")}


def test_a_peer_without_flags_is_no_witness() -> None:
    """A peer of an older release sends its view without the flags byte: its view still counts as evidence of who
    is alive (views() shows it), but it cannot vouch that an unheard member is down."""
    names = ["a", "b", "c"]
    sim = converged(names)
    b = sim.nodes["b"]
    old_body = b._heartbeat_body

    def without_flags() -> bytes:
        return old_body()[:-1]

    b._heartbeat_body = without_flags  # type: ignore[method-assign]
    sim.crash("c")
    sim.run(1.0)
    sim.restart("a")
    took = sim.run_until(sim.nodes["a"].settled, 2.0, step=STEP)
    assert took is not None and DEAD <= took < DEAD + 2 * STEP, took  # waited, as without views
    assert sim.nodes["a"].views()["b"] == {"a", "b"}


def test_a_member_that_starts_just_before_the_others_settle_is_waited_for() -> None:
    """a and b start together, c 10 ms before their dead timeout passes: c's first heartbeat reaches them before
    they settle, but proving it alive takes a round trip. They wait for it rather than settle on {a, b} and claim
    c's IPs for that moment (processes of a cold start come up seconds apart on a busy machine)."""
    names = ["a", "b", "c"]
    sim = SimNet(names, SECRET, jitter=0.0)
    sim.crash("c")
    sim.run(DEAD - 0.01)
    assert not any(sim.nodes[n].settled() for n in "ab")
    sim.restart("c")
    true = {n: won(n, frozenset(names)) for n in names}
    watch(sim, BOUND, lambda: all(claims(sim, n) <= true[n] for n in "ab") or pytest.fail(f"{sim.now}"))
    assert all(sim.nodes[n].settled() and sim.nodes[n].alive() == set(names) for n in names)


@pytest.mark.parametrize("late", [0.55, 1.53])
def test_a_member_that_starts_after_the_others_announced_takes_its_ips_only_once_they_count_it(late: float) -> None:
    """a and b start together and, c not being heard, settle after the dead timeout and share every IP; c starts
    ``late`` seconds later. c hears both (settled, their views lack it: they do not count it yet) before they
    have proved it alive: it waits until their views list it, rather than claim its IPs while they still hold
    them (the core before claimed them 20 ms early). The hand-over is then exact, and within the bound."""
    names = ["a", "b", "c"]
    sim = SimNet(names, SECRET)
    sim.crash("c")
    sim.run(late)
    assert all(sim.nodes[n].settled() and claims(sim, n) for n in "ab")
    sim.restart("c")
    c = sim.nodes["c"]
    watch(sim, BOUND, lambda: single_owners(sim, names))
    assert c.settled() and claims(sim, "c") == won("c", frozenset(names))
    assert all(claims(sim, n) == won(n, frozenset(names)) for n in "ab")


def test_a_view_of_any_other_size_is_ignored() -> None:
    """The bitmap alone (an older sender), the bitmap and the flags byte, anything else: no view, no flags."""
    assert split_view(3, None) == (None, None)
    assert split_view(3, b"\xe0") == (b"\xe0", None)
    assert split_view(3, b"\xe0\x01") == (b"\xe0", FLAG_SETTLED)
    assert split_view(3, b"\xe0\x01\x00") == (None, None)
    assert split_view(9, b"\xff") == (None, None)
    assert split_view(9, b"") == (None, None)


def lose_syncs(sim: SimNet, joiner: str, first: int) -> dict[str, list[float]]:
    """Drop the first ``first`` table syncs each member sends ``joiner`` (its NOTICEs: in a steady cluster nothing
    else is sent to it as a NOTICE); returns when each member sent one, by member (a sync of up to 64 members is
    one datagram)."""
    sent: dict[str, list[float]] = {}
    start = sim.now

    def drop(src: str, dest: str, data: bytes) -> bool:
        if dest != joiner or decode(data, [SECRET]).type is not MsgType.NOTICE:
            return False
        times = sent.setdefault(src, [])
        if not times or times[-1] != sim.now - start:
            times.append(sim.now - start)
        return len(times) <= first

    sim.drop = drop
    return sent


def single_owners(sim: SimNet, names: list[str]) -> None:
    owned: dict[str, str] = {}
    for n in names:
        for ip in claims(sim, n):
            assert ip not in owned, (sim.now, ip, owned[ip], n, sorted(sim.nodes[n].alive()))
            owned[ip] = n


@pytest.mark.parametrize("lost", [1, 2, 3])
@pytest.mark.parametrize(("size", "joiner"), [(13, "n00"), (16, "n07"), (16, "n05"), (40, "n21")])
def test_a_joiner_whose_first_table_syncs_are_lost_settles_complete_within_the_bound(
    size: int, joiner: str, lost: int
) -> None:
    """Above full_mesh_max a joiner learns the members it does not watch from its neighbours' table syncs. The
    first ``lost`` syncs of every neighbour are lost: each sends it again two heartbeat intervals later while the
    joiner's heartbeats say it is settling and its table differs (not after ``sync_interval``, past the bound), so
    it settles with every member in its view within the bound, and at no moment do two nodes claim one IP. (The
    joiners have 7 or 8 neighbours: with 8 of 13 or 9 of 16 they have a quorum from their neighbours alone.)"""
    names = [f"n{i:02d}" for i in range(size)]
    sim = converged(names)
    sent = lose_syncs(sim, joiner, lost)
    sim.restart(joiner)
    m = sim.nodes[joiner]
    watch(sim, BOUND, lambda: single_owners(sim, names))
    assert m.settled() and m.alive() == set(names), (lost, sorted(m.alive()))
    assert claims(sim, joiner) == won(joiner, frozenset(names))
    assert set(sent) == set(m.neighbours())
    assert all(len(times) == lost + 1 for times in sent.values()), sent  # one more that arrived, none after it
    watch(sim, 2.0, lambda: single_owners(sim, names))
    assert all(len(times) == lost + 1 for times in sent.values()), sent


def test_a_joiner_gets_every_neighbours_table_at_once_even_right_after_a_sync_to_its_last_incarnation() -> None:
    """Table syncs to one member are at least ``sync_interval`` apart, but a sync to its previous incarnation tells
    a restarted member nothing: every neighbour sends it its table as soon as it hears it, once."""
    names = [f"n{i:02d}" for i in range(16)]
    sim = SimNet(names, SECRET)
    sim.run(0.5)  # the cold start's syncs went out less than sync_interval ago
    assert sim.agree(expected=frozenset(names))
    sent = lose_syncs(sim, "n05", 0)
    sim.restart("n05")
    took = sim.run_until(sim.nodes["n05"].settled, BOUND, step=STEP)
    assert took is not None and took < DEAD / 2, took
    assert sim.nodes["n05"].alive() == set(names)
    sim.run(2.0)
    assert set(sent) == set(sim.nodes["n05"].neighbours())
    assert all(len(times) == 1 and times[0] < took for times in sent.values()), sent


def test_a_joiner_that_never_gets_a_table_is_sent_a_bounded_number_of_syncs() -> None:
    """Every sync to the joiner is lost: each neighbour sends one every two heartbeat intervals until the joiner
    settles (by the bound, without the members it could not learn), then one per ``sync_interval``, as to any
    neighbour whose table differs: no flood."""
    names = [f"n{i:02d}" for i in range(16)]
    sim = converged(names)
    sent = lose_syncs(sim, "n05", 1000)
    sim.restart("n05")
    sim.run(BOUND + 2 * CFG.sync_interval + 0.1)
    assert set(sent) == set(sim.nodes["n05"].neighbours())
    for times in sent.values():
        early = [t for t in times if t < BOUND]
        assert len(early) <= 1 + BOUND / (2 * CFG.interval), times
        assert all(b - a >= 2 * CFG.interval - 1e-9 for a, b in zip(times, times[1:], strict=False)), times
        late = [b - a for a, b in zip(times, times[1:], strict=False) if a >= BOUND]
        assert late and all(gap >= CFG.sync_interval - 1e-9 for gap in late), times


def test_a_settling_node_ticks_every_quarter_interval_then_on_the_heartbeat_schedule() -> None:
    """A shell reads its neighbours' heartbeats at the ticks: while settling, the core asks for a tick every quarter
    interval, so the heartbeat that completes its view counts within that (in ``ironlb run``, a rejoin's first own
    answer came a whole interval later without it); once settled, heartbeats and expiries set the deadline again."""
    names = ["a", "b", "c"]
    sim = SimNet(names, SECRET)
    sim.crash("b", "c")
    a = sim.nodes["a"]
    t = 0.0
    while t < DEAD:
        a.tick(t)
        assert not a.settled() and t < a.next_deadline() <= t + CFG.interval / 4 + 1e-9
        t = a.next_deadline()
    a.tick(t)
    assert a.settled()  # nobody heard: settled at the dead timeout
    ticks, end = 0, t + 1.0
    while (t := a.next_deadline()) < end:
        a.tick(t)
        ticks += 1
    assert ticks <= 1.0 / CFG.interval + 1, ticks
