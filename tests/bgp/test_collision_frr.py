"""Connection collisions (RFC 4271 section 6.8) against FRR 8.4's bgpd, made to happen in every round.

``collision_proc`` holds each connection FRR dials to the node until a round starts, then starts a session (it
dials FRR at once) and hands it FRR's connection as soon as that dial is up: two connections, each side with one
it opened, every round. Which OPEN and KEEPALIVE arrives first varies from round to round (both sides look
things up before they speak on a new connection). Whichever
connection survives, FRR must count one established connection per round: a collision never costs a session
reset (FRR counting 2 for one start-up was a CI flake of ``test_interop_frr``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bgp.conftest import FRR
from tests.support.jsonlines import JsonLinesChild, popen_child
from tests.support.netns import NetnsLab
from tests.support.waits import STARTING, wait_until

pytestmark = pytest.mark.netns

NODE4, RTR4 = "10.97.0.1", "10.97.0.2"
ROUNDS = 12


class Crossing(JsonLinesChild):
    def __init__(self, lab: NetnsLab, ns: str, config: dict[str, Any], log: Path) -> None:
        self.log = log
        with log.open("w") as err:
            arg = json.dumps({"config": config, "listen": NODE4})
            proc = popen_child(lab, ns, "tests.bgp.collision_proc", arg, stderr=err)
        super().__init__(proc, "collision_proc")

    def ask(self, cmd: dict[str, Any], key: str, timeout: float = 40.0) -> Any:
        self.send(**cmd)
        while True:
            msg = self.read(timeout)
            if key in msg:
                return msg[key]


@pytest.fixture
def lab_ns(netns_lab: NetnsLab) -> Iterator[tuple[NetnsLab, str, str]]:
    node, rtr = netns_lab.netns("node"), netns_lab.netns("rtr")
    netns_lab.veth(node, "eth0", rtr, "eth0")
    netns_lab.addr(node, "eth0", f"{NODE4}/24")
    netns_lab.addr(rtr, "eth0", f"{RTR4}/24")
    yield netns_lab, node, rtr


def neighbor(frr: FRR) -> dict[str, Any]:
    info: dict[str, Any] = frr.json(f"show bgp neighbor {NODE4} json").get(NODE4, {})
    return info


@pytest.mark.parametrize(
    ("node_id", "node_asn"),
    [("10.97.0.1", 64512), ("250.0.0.1", 64512), ("10.97.0.1", 64513), ("250.0.0.1", 64513)],
    ids=["node-lower-ebgp", "node-higher-ebgp", "node-lower-ibgp", "node-higher-ibgp"],
)
def test_every_collision_ends_in_one_session_never_a_reset(
    lab_ns: tuple[NetnsLab, str, str], tmp_path: Path, node_id: str, node_asn: int
) -> None:
    """FRR's identifier is 10.97.0.2: the node's is lower, then higher; eBGP (the node checks the peer is on
    link before it speaks on the inbound connection) and iBGP."""
    lab, node, rtr = lab_ns
    frr = FRR(lab, rtr)
    child: Crossing | None = None
    try:
        frr.start()
        frr.configure(
            f"router bgp 64513\n bgp router-id {RTR4}\n no bgp ebgp-requires-policy\n"
            f" neighbor {NODE4} remote-as {node_asn}\n neighbor {NODE4} timers 3 9\n"
            f" neighbor {NODE4} timers connect 1\n"
        )
        frr.vtysh("debug bgp neighbor-events")
        config = {"my_asn": node_asn, "peer_asn": 64513, "peer_address": RTR4, "router_id": node_id,
                  "hold_time": 9, "connect_time": 1.0}  # fmt: skip
        child = Crossing(lab, node, config, tmp_path / "node.log")

        def evidence() -> str:
            assert child is not None
            bgpd = (frr.dir / "bgpd.log").read_text(errors="replace").splitlines()
            keep = ("[FSM]", "NOTIFICATION", "rcv OPEN", "connection", "transfer", "stub")
            events = "\n".join(line for line in bgpd if any(k in line for k in keep))
            print(f"--- node\n{child.log.read_text(errors='replace')}\n--- bgpd\n{events}")
            return "logs on stdout"

        def established_count() -> int:
            return int(neighbor(frr).get("connectionsEstablished", 0))

        outcomes: list[dict[str, Any]] = []
        before = established_count()
        for k in range(ROUNDS):
            got = child.ask({"cmd": "round"}, "round")
            assert "error" not in got, (k, got, outcomes, evidence())
            wait_until(lambda: neighbor(frr).get("bgpState") == "Established", 10, "FRR established",
                       retry=STARTING, interval=0.02)  # fmt: skip
            child.ask({"cmd": "stop"}, "stopped")  # a bare TCP close: FRR counts it dropped, never established
            after = established_count()
            outcomes.append({"round": k, "frr_established": after - before, **got})
            before = after
        resets = [o for o in outcomes if o["frr_established"] != 1 or o["established"] != 1]
        assert not resets, (f"{len(resets)} of {len(outcomes)} rounds reset a session", resets, evidence())
        assert all(o["crossed"] for o in outcomes), outcomes  # two connections to settle, every round
    finally:
        if child is not None:
            child.proc.kill()
            child.proc.wait()
        lab.cleanup()
        frr.cleanup()
