"""The watcher design at sizes above the full mesh, on a simulated clock (no sockets)."""

from __future__ import annotations

import random

import pytest

from ironlb.membership import MemberDown, MembershipConfig, MemberUp, QuorumChanged
from ironlb.membership.graph import watch_graph
from ironlb.membership.simulation import SimNet
from ironlb.membership.wire import MsgType, Packet, decode, encode

SECRET = b"scale-test-secret-0123456789abcdef"
CFG = MembershipConfig()
# A death is seen by its watchers after at most dead_timeout; everyone else hears
# their notice one latency later and folds it in within a quarter interval.
BOUND = CFG.dead_timeout + CFG.interval / 4 + 0.01


def names_of(n: int) -> list[str]:
    return [f"node-{i:04d}" for i in range(n)]


def started(n: int, **kw: object) -> SimNet:
    names = names_of(n)
    sim = SimNet(names, SECRET, start_spread=0.05, **kw)  # type: ignore[arg-type]
    sim.run(1.5)
    assert sim.agree(expected=frozenset(names))
    assert all(m.has_quorum() and m.settled() for m in sim.nodes.values())
    return sim


def test_watch_graph_is_symmetric_bounded_and_connected() -> None:
    order = tuple(names_of(300))
    adj = watch_graph(order, CFG.rings, CFG.full_mesh_max)
    assert all(i in adj[j] for i, nbrs in enumerate(adj) for j in nbrs)
    assert max(len(nbrs) for nbrs in adj) <= 2 * CFG.rings
    seen, todo = {0}, [0]
    while todo:
        for j in adj[todo.pop()]:
            if j not in seen:
                seen.add(j)
                todo.append(j)
    assert len(seen) == len(order)
    small = watch_graph(tuple(names_of(CFG.full_mesh_max)), CFG.rings, CFG.full_mesh_max)
    assert all(len(nbrs) == CFG.full_mesh_max - 1 for nbrs in small)


@pytest.mark.parametrize("n", [50, 200])
def test_death_detected_by_everyone_within_bound(n: int) -> None:
    sim = started(n)
    victim = sim.names[n // 3]
    t0 = sim.now
    sim.crash(victim)
    sim.run(1.0)
    for name in sim.live():
        t = sim.first(name, lambda e: e == MemberDown(victim, "timeout"), since=t0)
        assert t is not None and t - t0 <= BOUND, name
    assert sim.agree(expected=frozenset(sim.names) - {victim})
    # Each node heard of the death once, and nothing else happened.
    for name in sim.live():
        assert [e for t, m, e in sim.events if m == name and t >= t0] == [MemberDown(victim, "timeout")]


def test_steady_state_cost_does_not_grow_with_the_cluster() -> None:
    sim = started(100)
    for st in sim.stats.values():
        st.sent = st.received = 0
    sim.run(2.0)
    per_node = [(st.sent + st.received) / 2.0 for st in sim.stats.values()]
    # 2 * rings neighbours, one heartbeat each way per interval.
    assert max(per_node) <= 2 * 2 * CFG.rings / CFG.interval


def test_death_notices_are_idempotent() -> None:
    sim = started(50, record=True)
    victim = sim.names[7]
    t0 = sim.now
    sim.crash(victim)
    sim.run(1.0)
    notices = [
        (src, dest, data) for t, src, dest, data in sim.log if t >= t0 and decode(data, [SECRET]).type is MsgType.NOTICE
    ]
    watchers = {src for src, _dest, _data in notices}
    assert watchers and watchers <= set(sim.nodes[victim].neighbours())
    # Another watcher telling the same thing again, with a new sequence number, changes nothing.
    src, dest, data = next((s, d, x) for s, d, x in notices if d not in sim.nodes[victim].neighbours() and d != victim)
    pkt = decode(data, [SECRET])
    again = encode(Packet(MsgType.NOTICE, src, dest, pkt.incarnation, pkt.seq + 10**6, payload=pkt.payload), SECRET)
    before = (sim.nodes[dest].alive(), sim.nodes[dest].table_hash())
    assert sim.deliver(dest, again, src) == []
    assert (sim.nodes[dest].alive(), sim.nodes[dest].table_hash()) == before
    downs = [e for t, m, e in sim.events if m == dest and t >= t0]
    assert downs == [MemberDown(victim, "timeout")]


def test_replayed_death_notice_is_rejected() -> None:
    sim = started(50, record=True)
    victim = sim.names[11]
    t0 = sim.now
    sim.crash(victim)
    sim.run(1.0)
    src, dest, data = next(
        (s, d, x) for t, s, d, x in sim.log if t >= t0 and d != victim and decode(x, [SECRET]).type is MsgType.NOTICE
    )
    node = sim.nodes[dest]
    before = (node.alive(), node.table_hash(), node.rejected["replay"])
    assert sim.deliver(dest, data, src) == []
    assert (node.alive(), node.table_hash()) == before[:2]
    assert node.rejected["replay"] == before[2] + 1
    # The victim comes back; a replay of the old notice cannot kill the new life.
    sim.restart(victim)
    sim.run(1.0)
    assert sim.agree(expected=frozenset(sim.names))
    for other in sim.live():
        if other not in (victim, src):
            sim.deliver(other, data, src)
    sim.run(0.5)
    assert sim.agree(expected=frozenset(sim.names))


def test_false_death_is_refuted() -> None:
    sim = started(50)
    victim = sim.names[20]
    watcher = sim.nodes[victim].neighbours()[0]
    sim.blocked = {(victim, watcher), (watcher, victim)}  # only this one link fails
    t0 = sim.now
    sim.run(2.0)
    # Both ends of the broken link declare each other dead; both refute.
    for name in (victim, watcher):
        assert sim.nodes[name].refutations >= 1 and sim.nodes[name].generation >= 1
    # The two cannot see each other, but everyone else knows both are alive.
    assert sim.nodes[watcher].alive() == frozenset(sim.names) - {victim}
    assert sim.nodes[victim].alive() == frozenset(sim.names) - {watcher}
    others = [n for n in sim.live() if n not in (watcher, victim)]
    assert sim.agree(others, expected=frozenset(sim.names))
    # A few moments of doubt at most: nobody else saw it down for longer than a second.
    inc = sim.nodes[victim].incarnation
    for name in others:
        ups = [t for t, m, e in sim.events if m == name and t >= t0 and e == MemberUp(victim, inc)]
        downs = [
            t for t, m, e in sim.events if m == name and t >= t0 and isinstance(e, MemberDown) and e.name == victim
        ]
        assert len(downs) == len(ups) <= 1
        if downs:
            assert ups[0] - downs[0] < 1.0
    sim.heal()
    sim.run(1.0)
    assert sim.agree(expected=frozenset(sim.names))


@pytest.mark.parametrize("shape", ["random", "contiguous"])
def test_partition_minority_withdraws_majority_keeps_quorum(shape: str) -> None:
    n = 60
    sim = started(n)
    names = list(sim.names)
    if shape == "random":
        random.Random(5).shuffle(names)
    minority, majority = names[: n // 3], names[n // 3 :]
    t0 = sim.now
    sim.partition(minority, majority)
    sim.run(1.5)
    for name in minority:
        assert not sim.nodes[name].has_quorum(), name
        t = sim.first(name, lambda e: isinstance(e, QuorumChanged) and not e.has_quorum, since=t0)
        assert t is not None and t - t0 <= BOUND
        assert sim.nodes[name].alive() <= set(minority)
    keep = [m for m in majority if sim.nodes[m].has_quorum()]
    # A majority node whose every watcher is in the minority drops out of the watch
    # graph and withdraws too (safe); the rest keep quorum and agree on who is alive.
    assert len(keep) >= 0.9 * len(majority)
    assert sim.agree(keep)
    assert sim.nodes[keep[0]].alive() <= set(majority)
    sim.heal()
    sim.run(2.0)
    assert sim.agree(expected=frozenset(sim.names))
    assert all(m.has_quorum() for m in sim.nodes.values())


def test_leave_is_seen_by_everyone_at_once() -> None:
    sim = started(40)
    leaver = sim.names[3]
    t0 = sim.now
    sim.leave(leaver)
    sim.run(0.5)
    for name in sim.live():
        t = sim.first(name, lambda e: e == MemberDown(leaver, "left"), since=t0)
        assert t is not None and t - t0 <= CFG.interval / 4 + 0.01
    assert sim.agree(expected=frozenset(sim.names) - {leaver})


def test_restart_is_announced_to_non_neighbours() -> None:
    sim = started(40)
    node = sim.names[9]
    sim.crash(node)
    sim.run(0.1)
    t0 = sim.now
    sim.restart(node)
    sim.run(1.0)
    inc = sim.nodes[node].incarnation
    assert sim.agree(expected=frozenset(sim.names))
    for name in sim.live():
        if name != node:
            assert sim.first(name, lambda e: e == MemberUp(node, inc), since=t0) is not None


def test_lost_notices_are_repaired_by_table_sync() -> None:
    sim = started(50)
    victim, deaf = sim.names[30], sim.names[4]
    assert victim not in sim.nodes[deaf].neighbours()
    t0 = sim.now
    # Every NOTICE for `deaf` is lost for a while: it learns of the death from a neighbour's table.
    sim.drop = lambda src, dest, data: (
        dest == deaf and sim.now < t0 + 0.5 and decode(data, [SECRET]).type is MsgType.NOTICE
    )
    sim.crash(victim)
    sim.run(0.5)
    assert victim in sim.nodes[deaf].alive()
    sim.run(CFG.sync_interval + 2 * CFG.dead_timeout)
    assert sim.agree(expected=frozenset(sim.names) - {victim})
