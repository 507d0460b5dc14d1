"""Interop of the BFD echo function (RFC 5880 §6.4, RFC 5881 §4) with FRR 8.4's bfdd, in two namespaces.

Both sides send echo packets from and to their own address through the other's MAC; each kernel forwards the
other's echo packets back (``ip_forward=1``, as on a Kubernetes node). A forwarding path broken in one direction,
while control packets still flow, must take the session down with diag 2 ("echo function failed").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ironlb.lab.netns import NetnsLab
from tests.bfd.test_bfd_frr import BFDProc
from tests.support.bfd_frr import FRRInstance, node_router
from tests.support.waits import STARTING, wait_until

NODE, RTR = "10.98.0.1", "10.98.0.2"
ECHO_PROFILE = {
    "name": "echo",
    "receive_interval": 300,
    "transmit_interval": 300,
    "detect_multiplier": 3,
    "echo_mode": True,
    "echo_interval": 100,
}
FRR_ECHO = f"""
bfd
 peer {NODE}
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
  echo-mode
  echo transmit-interval 100
  echo receive-interval 100
 !
!
"""


@pytest.fixture
def echo_topo(bfd_lab: NetnsLab) -> Iterator[tuple[NetnsLab, str, str, FRRInstance]]:
    lab = bfd_lab
    forward = {"net.ipv4.ip_forward": "1"}
    with node_router(
        lab, ("zebra", "bfdd"), [f"{NODE}/24"], [f"{RTR}/24"], node_sysctls=forward, router_sysctls=forward
    ) as topo:
        yield (lab, *topo)


def drop_forwarded_echo(lab: NetnsLab, ns: str) -> None:
    """Drop the echo packets ``ns`` forwards (UDP 3785): its data plane no longer loops them; BFD control flows."""
    lab.run(ns, ["nft", "add", "table", "inet", "ilbecho"])
    chain = ["{", "type", "filter", "hook", "forward", "priority", "0", ";", "}"]
    lab.run(ns, ["nft", "add", "chain", "inet", "ilbecho", "f", *chain])
    lab.run(ns, ["nft", "add", "rule", "inet", "ilbecho", "f", "udp", "dport", "3785", "drop"])


def restore_forwarding(lab: NetnsLab, ns: str) -> None:
    lab.run(ns, ["nft", "delete", "table", "inet", "ilbecho"], check=False)


def counters(ours: BFDProc) -> dict[str, Any]:
    return dict(ours.info()["counters"])


@pytest.mark.netns
def test_echo_both_ways_with_frr_and_echo_failure_each_way(echo_topo: tuple[NetnsLab, str, str, FRRInstance]) -> None:
    lab, node, rtr, frr = echo_topo
    frr.configure(FRR_ECHO)
    ours = BFDProc(lab, node, {"peer": RTR, "local": NODE, "profile": ECHO_PROFILE})
    ours.wait_for("bfd", True, 10.0)
    wait_until(lambda: frr.bfd_status(NODE) == "up", 10.0, "FRR up", retry=STARTING, interval=0.02)

    # Our echo packets go out and come back through FRR's kernel; FRR's come back through ours.
    wait_until(lambda: counters(ours)["echo_in"] >= 20, 10.0, "our echo packets returned", retry=STARTING, interval=0.1)
    entry = frr.bfd_peer(NODE)
    assert entry is not None and entry["remote-echo-receive-interval"] == 100
    frr_counters = lambda: frr.json(f"show bfd peer {NODE} counters json")  # noqa: E731
    wait_until(
        lambda: frr_counters()["echo-packet-input"] >= 20, 10.0, "FRR's echo returned", retry=STARTING, interval=0.1
    )
    c = counters(ours)
    assert c["echo_out"] >= c["echo_in"] >= 20 and c["echo_dropped"] == 0
    assert ours.info()["state"] == "UP"

    # 1. FRR's namespace stops forwarding our echo packets; control packets still flow both ways. Only echo can
    # tell: our session goes Down with diag 2 and FRR is told why.
    drop_forwarded_echo(lab, rtr)
    down = ours.wait_for("bfd", False, 5.0)
    assert down["diag"] == 2, down
    # It keeps failing while the path is broken (Up through the control handshake, Down on echo again).
    again = ours.wait_for("bfd", False, 5.0)
    assert again["diag"] == 2, again
    restore_forwarding(lab, rtr)
    ours.wait_for("bfd", True, 10.0)
    wait_until(lambda: frr.bfd_status(NODE) == "up", 10.0, "FRR up again", retry=STARTING, interval=0.02)

    # 2. Our namespace stops looping FRR's echo packets back: FRR's session fails with "echo function failed".
    drop_forwarded_echo(lab, node)
    down = ours.wait_for("bfd", False, 5.0)
    assert (down["diag"], down["remote_diag"]) == (3, 2), down  # FRR said Down, because its echo failed
    restore_forwarding(lab, node)
    wait_until(lambda: frr.bfd_status(NODE) == "up", 10.0, "FRR up at the end", retry=STARTING, interval=0.02)


@pytest.mark.netns
def test_no_forwarding_no_echo_asked(echo_topo: tuple[NetnsLab, str, str, FRRInstance]) -> None:
    """A host that does not forward IPv4 cannot loop echo packets back: it advertises Required Min Echo RX 0."""
    lab, node, _rtr, frr = echo_topo
    lab.run(node, ["sysctl", "-qw", "net.ipv4.ip_forward=0"])
    frr.configure(FRR_ECHO)
    ours = BFDProc(lab, node, {"peer": RTR, "local": NODE, "profile": ECHO_PROFILE})
    ours.wait_for("bfd", True, 10.0)
    wait_until(lambda: frr.bfd_status(NODE) == "up", 10.0, "FRR up", retry=STARTING, interval=0.02)
    entry = frr.bfd_peer(NODE)
    assert entry is not None and entry["remote-echo-receive-interval"] == 0
    # We still send ours (FRR asks for them) and they come back.
    wait_until(lambda: counters(ours)["echo_in"] >= 10, 10.0, "our echo returned", retry=STARTING, interval=0.1)
