"""``ironlb run`` on a LAN of three nodes in network namespaces, checked with real arping and a real client."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from ironlb.lab.lan import Lan
from tests.support.waits import WaitTimeout, wait_until

from .conftest import SEED, SERVICE, VIP, Cluster

pytestmark = pytest.mark.netns


def test_three_nodes_one_announcer_failover_and_leave(lan: Lan, tmp_path: Path) -> None:
    c = Cluster(lan, tmp_path)
    (c.state / "config.yaml").write_text(SEED)
    (c.state / "service.yaml").write_text(SERVICE)
    for node in ("node1", "node2", "node3"):
        c.start(node)
    def agreed() -> set[str]:
        plans = [c.status(n) for n in c.procs]
        return {p["services"]["default/my-service"]["layer2"]["node"] for p in plans if p}

    # Every node computes the same plan, and exactly the elected node announces.
    try:
        wait_until(
            lambda: c.converged() and len(c.announcers()) == 1 and agreed() == set(c.announcers()), 60,
            "every node's plan to elect the one announcer", retry=(KeyError, TypeError),
        )
    except WaitTimeout as err:
        raise AssertionError([c.log(n) for n in c.procs]) from err
    first = c.announcers()[0]
    assert all((c.status(n) or {})["services"]["default/my-service"]["ingress"] == [VIP] for n in c.procs)
    assert c.arping_macs() == {lan.node(first).mac}

    # Kill -9 the announcer and cut its link: a survivor takes over, and only it answers.
    t0 = time.monotonic()
    c.procs[first].send_signal(signal.SIGKILL)
    lan.lab.run(lan.node(first).netns, ["ip", "link", "set", "eth0", "down"])
    wait_until(lambda: any(n != first for n in c.announcers()), 5, "any(n != first for n in c.announcers())")
    took = time.monotonic() - t0
    second = next(n for n in c.announcers() if n != first)
    assert took < 5.0, took  # detection (350 ms) + GARP; figures in bench/l2_failover.py
    assert c.arping_macs() == {lan.node(second).mac}

    # The dead node comes back: the election is per IP and stateless, so the IP returns to it.
    lan.lab.run(lan.node(first).netns, ["ip", "link", "set", "eth0", "up"])
    c.start(first)
    wait_until(lambda: c.announcers() == [first], 60, "c.announcers() == [first]")  # includes its start-up
    assert c.arping_macs() == {lan.node(first).mac}

    # A clean stop says goodbye (LEAVE): the next node takes over without waiting for the dead timeout.
    c.procs[first].send_signal(signal.SIGTERM)
    c.procs[first].wait(timeout=5)
    assert c.procs[first].returncode == 0
    wait_until(lambda: c.announcers() == [second], 2, "c.announcers() == [second]")
    # Through the LEAVE, not the dead timeout: the survivors say so (the time is bench/l2_failover.py's figure).
    left = f"MemberDown(name='{first}', reason='left')"
    survivors = [n for n in ("node1", "node2", "node3") if n != first]
    wait_until(lambda: all(left in c.log(n) for n in survivors), 10, "the survivors saw the LEAVE")
    stopped = c.status(first)
    assert stopped and stopped.get("stopped") and stopped["announcing"]["layer2"] == []

    # Quorum: with two of three members gone, the survivor may be the minority side of a partition: it withdraws.
    c.procs[second].send_signal(signal.SIGKILL)
    third = next(n for n in ("node1", "node2", "node3") if n not in (first, second))
    wait_until(lambda: (c.status(third) or {}).get("members", {}).get("quorum") is False, 3, "(c.status(third) or {}).get('members', {}).get('quorum') is False")
    assert c.announcers() == []
    assert c.arping_macs(count=1) == set()


def test_state_changes_apply_fast_and_bad_config_keeps_the_last_good(lan: Lan, tmp_path: Path) -> None:
    c = Cluster(lan, tmp_path)
    (c.state / "config.yaml").write_text(SEED)
    for node in ("node1", "node2", "node3"):
        c.start(node)
    wait_until(c.converged, 60, "the nodes to converge")  # includes starting three Python processes
    assert c.announcers() == []
    t0 = time.monotonic()
    (c.state / "service.yaml").write_text(SERVICE)
    wait_until(lambda: len(c.announcers()) == 1, 5, "len(c.announcers()) == 1")
    applied = time.monotonic() - t0
    assert applied < 5.0, applied
    owner = c.announcers()[0]
    assert c.arping_macs() == {lan.node(owner).mac}

    # MetalLB's metrics, served by every node: the announcer exports its announcement and the ARP it answered.
    metrics = c.metrics(owner)
    assert (
        f'metallb_speaker_announced{{ip="{VIP}",node="{owner}",protocol="layer2",service="default/my-service"}} 1.0'
        in metrics
    )
    assert f'metallb_layer2_requests_received{{ip="{VIP}"}}' in metrics
    assert f'metallb_layer2_gratuitous_sent{{ip="{VIP}"}}' in metrics
    other = next(n for n in c.procs if n != owner)
    assert "metallb_speaker_announced{" not in c.metrics(other)

    # Invalid config: reported, and the last good config keeps announcing.
    (c.state / "config.yaml").write_text(SEED.replace("192.168.1.240-192.168.1.250", "192.168.1.250-192.168.1.240"))
    wait_until(lambda: all((c.status(n) or {}).get("config", {}).get("valid") is False for n in c.procs), 5, "all((c.status(n) or {}).get('config', {}).get('valid') is False for n in c.procs)")
    err = c.status(owner)["config"]["error"]  # type: ignore[index]
    assert "is after the end IP" in err
    assert c.announcers() == [owner]
    assert c.arping_macs() == {lan.node(owner).mac}

    # Deleting the Service withdraws it.
    (c.state / "service.yaml").unlink()
    wait_until(lambda: c.announcers() == [], 5, "c.announcers() == []")
    assert c.arping_macs(count=1) == set()
