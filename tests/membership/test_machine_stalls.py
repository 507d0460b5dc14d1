"""Stalls of the whole machine, of one node, and of the network, on the simulated clock (issue 9).

On a loaded machine the benchmark saw heartbeats stop for 0.3-0.8 s. A node whose own process did not run for
that long sees its tick come late and grants its peers one more dead timeout (``fsm`` module doc: local stalls),
so when every node's process stalls (the whole machine), nobody blames anybody, however the stalls start and end.
What the core cannot forgive, and must not: one node silent past the dead timeout while the others ran (it is
dead as far as they can tell), and a network that delivers nothing for that long while every process runs (no
observer was late; every node then declares the others dead and, alone, loses quorum, so none answers, and all
recover when the datagrams flow again). ``SimNet.freeze`` runs what a frozen node received before its late tick,
as ``MembershipService`` drains its members' sockets before every tick.
"""

from __future__ import annotations

import random

import pytest

from ironlb.membership import MemberDown, MembershipConfig
from ironlb.membership.simulation import SimNet

CFG = MembershipConfig(interval=0.1, dead_timeout=0.35)  # ironlb run's defaults
NODES = ["a", "b", "c"]
SECRET = b"machine-stall-test-secret-0123456789"
STALLS = [0.3, 0.42, 0.514, 0.8]  # seconds: what the benchmark saw


def converged(seed: int) -> SimNet:
    net = SimNet(list(NODES), SECRET, CFG, seed=seed)
    net.run(2.0 + random.Random(seed).random() * CFG.interval)  # a random phase of the heartbeats
    assert net.agree(expected=frozenset(NODES))
    return net


def downs_after(net: SimNet, mark: int) -> list[tuple[str, str]]:
    return [(n, e.name) for _t, n, e in net.events[mark:] if isinstance(e, MemberDown)]


@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("seed", range(5))
def test_a_whole_machine_stall_declares_nobody_dead(stall: float, seed: int) -> None:
    net = converged(seed)
    mark = len(net.events)
    net.freeze(stall)
    net.run(3.0)
    assert downs_after(net, mark) == []
    assert net.agree(expected=frozenset(NODES))
    assert all(net.nodes[n].stalls == 1 for n in NODES)  # each saw its own stall


@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("seed", range(5))
def test_stalls_that_start_or_end_apart_declare_nobody_dead(stall: float, seed: int) -> None:
    """Processes blocked at different moments and released together (a file system stall), or blocked together
    and released up to 150 ms apart (the run queue): each observer's own stall covers the others'."""
    rng = random.Random(seed)
    net = converged(seed)
    mark = len(net.events)
    starts = sorted((rng.uniform(0, 0.15), n) for n in NODES)
    elapsed = 0.0
    for offset, name in starts:
        net.run(offset - elapsed)
        elapsed = offset
        net.freeze(stall - offset, name)
    net.run(3.0)
    net2 = converged(seed + 100)
    mark2 = len(net2.events)
    for name in NODES:
        net2.freeze(stall - rng.uniform(0, 0.15), name)
    net2.run(3.0)
    assert downs_after(net, mark) == [] and downs_after(net2, mark2) == []


@pytest.mark.parametrize("stall", STALLS[1:])  # 0.3 s plus the heartbeat phase may stay under 0.35 s
def test_one_node_silent_past_the_dead_timeout_is_dead_to_the_others(stall: float) -> None:
    """What no grace may hide: the others ran on time, and could not tell this node from a dead one."""
    net = converged(1)
    mark = len(net.events)
    net.freeze(stall, "a")
    net.run(3.0)
    assert sorted(downs_after(net, mark)) == [("b", "a"), ("c", "a")]
    assert net.nodes["b"].stalls == 0 and net.nodes["c"].stalls == 0
    assert net.agree(expected=frozenset(NODES))  # and back once it runs again


def test_a_network_stall_takes_every_node_off_the_air_and_all_recover() -> None:
    """No process was late, so no observer can call it its own stall: each declares the others dead, is alone,
    and loses quorum (nobody answers, nobody answers twice); the held heartbeats arrive, and all is as before."""
    net = converged(2)
    mark = len(net.events)
    net.hold(0.5)
    net.run(0.45)
    assert sorted(downs_after(net, mark)) == sorted((o, m) for o in NODES for m in NODES if o != m)
    assert not any(net.nodes[n].has_quorum() for n in NODES)
    net.run(2.0)
    assert net.agree(expected=frozenset(NODES))
    assert all(net.nodes[n].has_quorum() for n in NODES)
