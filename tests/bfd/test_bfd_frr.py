"""Interop: our BFD service against FRR 8.4's bfdd, in two network namespaces joined by a veth pair."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ironlb.lab.netns import NetnsLab
from tests.support.bfd_frr import FRRInstance, kernel_route, nft_clear, nft_drop_bfd, node_router, router_conf
from tests.support.jsonlines import JsonLinesChild, popen_child
from tests.support.waits import STARTING, wait_until

NODE, RTR = "10.97.0.1", "10.97.0.2"
NODE6, RTR6 = "fd00:97::1", "fd00:97::2"
PROFILE = {"name": "fast", "receive_interval": 300, "transmit_interval": 300, "detect_multiplier": 3}

DETECTED = 20.0
"""Seconds within which a BFD detection (900 ms here) must show: far below the 90 s hold timer and any timer of
minutes it stands in for, and wide enough for a loaded machine. The detection times are bench/bfd_failover.py's."""


class BFDProc(JsonLinesChild):
    """tests/bfd/bfd_proc.py in a namespace; JSON lines both ways."""

    def __init__(self, lab: NetnsLab, ns: str, config: dict[str, Any]) -> None:
        proc = popen_child(lab, ns, "tests.bfd.bfd_proc", json.dumps(config), stderr=subprocess.PIPE)
        super().__init__(proc, "bfd_proc")

    def info(self) -> dict[str, Any]:
        self.send(cmd="info")
        while True:
            msg = self.read(5)
            if "info" in msg:
                return dict(msg["info"])




def bfd_conf(peer: str, *, extra: str = "", local: str | None = None, multihop: bool = False) -> str:
    opts = (" multihop" if multihop else "") + (f" local-address {local}" if local else "")
    return f"""
bfd
 peer {peer}{opts}
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
{extra} !
!
"""


@pytest.fixture
def topo(bfd_lab: NetnsLab) -> Iterator[tuple[NetnsLab, str, str, FRRInstance]]:
    lab = bfd_lab
    with node_router(lab, ("zebra", "bfdd"), [f"{NODE}/24", f"{NODE6}/64"], [f"{RTR}/24", f"{RTR6}/64"]) as topo:
        yield (lab, *topo)


def both_up(frr: FRRInstance, ours: BFDProc, peer: str, timeout: float = 10.0) -> None:
    ours.wait_for("bfd", True, timeout)
    wait_until(lambda: frr.bfd_status(peer) == "up", timeout, f"FRR sees {peer} up", retry=STARTING, interval=0.02)


@pytest.mark.netns
def test_up_then_silent_death_both_ways(topo: tuple[NetnsLab, str, str, FRRInstance]) -> None:
    lab, node, rtr, frr = topo
    frr.configure(bfd_conf(NODE))
    ours = BFDProc(lab, node, {"peer": RTR, "local": NODE, "profile": PROFILE})
    both_up(frr, ours, NODE)
    time.sleep(0.5)  # past the Poll sequences that end slow start on both sides
    entry = frr.bfd_peer(NODE)
    assert entry is not None
    assert entry["remote-receive-interval"] == 300 and entry["remote-transmit-interval"] == 300
    assert entry["remote-detect-multiplier"] == 3 and entry["remote-id"] != 0
    info = ours.info()
    assert info["state"] == "UP" and info["remote_discriminator"] == entry["id"]
    assert info["transmit_interval_ms"] == 300 and info["detection_time_ms"] == 900

    # 1. We fall silent (nftables drop in our namespace): FRR must declare us down within ~1 s.
    nft_drop_bfd(lab, node)
    t0 = time.monotonic()
    wait_until(lambda: frr.bfd_status(NODE) == "down", DETECTED, "FRR declares us down", retry=STARTING, interval=0.02)
    frr_detect = time.monotonic() - t0
    assert frr_detect < DETECTED, frr_detect  # BFD, not a timer of minutes; the figure is bench/bfd_failover.py
    nft_clear(lab, node)
    both_up(frr, ours, NODE)
    time.sleep(0.5)

    # 2. FRR falls silent: our session goes Down within the detection time and the callback fires.
    nft_drop_bfd(lab, rtr)
    t1 = time.monotonic()
    down = ours.wait_for("bfd", False, DETECTED)
    our_detect = down["t"] - t1
    assert our_detect < DETECTED, our_detect  # 3 x 300 ms after the last packet received, plus a loaded machine
    info = ours.info()
    assert info["state"] in ("DOWN", "INIT") and info["local_diag"] == 1
    nft_clear(lab, rtr)
    both_up(frr, ours, NODE)
    print(f"FRR detected our silence in {frr_detect * 1000:.0f} ms, we detected FRR's in {our_detect * 1000:.0f} ms")


@pytest.mark.netns
def test_killed_process_detected_by_frr(topo: tuple[NetnsLab, str, str, FRRInstance]) -> None:
    lab, node, rtr, frr = topo
    frr.configure(bfd_conf(NODE))
    ours = BFDProc(lab, node, {"peer": RTR, "local": None, "profile": PROFILE})
    both_up(frr, ours, NODE)
    time.sleep(0.5)
    ours.proc.send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    wait_until(lambda: frr.bfd_status(NODE) == "down", DETECTED, "FRR declares us down", retry=STARTING, interval=0.02)
    assert time.monotonic() - t0 < DETECTED
    entry = frr.bfd_peer(NODE)
    assert entry is not None and entry["diagnostic"] == "control detection time expired"


@pytest.mark.netns
def test_ipv6_passive_and_admin_down(topo: tuple[NetnsLab, str, str, FRRInstance]) -> None:
    lab, node, rtr, frr = topo
    # We are passive: nothing goes out until FRR (active) speaks first.
    passive = {**PROFILE, "passive_mode": True}
    ours = BFDProc(lab, node, {"peer": RTR6, "local": NODE6, "profile": passive})
    time.sleep(1.5)
    assert ours.info()["counters"]["control_out"] == 0
    frr.configure(bfd_conf(NODE6))
    both_up(frr, ours, NODE6)
    # FRR shuts its peer down administratively: we go Down without reporting a failure.
    frr.configure(bfd_conf(NODE6, extra="  shutdown\n"))
    wait_until(lambda: ours.info()["remote_state"] == "ADMIN_DOWN", 3.0, "AdminDown from FRR", retry=STARTING, interval=0.02)
    assert ours.info()["state"] == "DOWN"
    assert [m["bfd"] for m in ours.lines if "bfd" in m] == [True]
    frr.configure(bfd_conf(NODE6, extra="  no shutdown\n"))
    wait_until(lambda: frr.bfd_status(NODE6) == "up", 10.0, "back up", retry=STARTING, interval=0.02)
    # Closing our side sends AdminDown: FRR reports the peer down with diag "administratively down".
    ours.send(cmd="close")
    ours.wait_for("closed", True, 5.0)
    entry = wait_until(lambda: (e := frr.bfd_peer(NODE6)) and e["status"] == "down" and e, 3.0, "FRR sees AdminDown", retry=STARTING, interval=0.02)
    print(entry)
    assert entry["remote-diagnostic"] == "administratively down"


@pytest.mark.netns
def test_multihop_with_frr(topo: tuple[NetnsLab, str, str, FRRInstance]) -> None:
    lab, node, rtr, frr = topo
    frr.configure(bfd_conf(NODE, local=RTR, multihop=True))
    ours = BFDProc(
        lab, node, {"peer": RTR, "local": NODE, "multihop": True, "profile": {**PROFILE, "minimum_ttl": 254}}
    )
    ours.wait_for("bfd", True, 10.0)
    wait_until(lambda: frr.bfd_status(NODE) == "up", 10.0, "FRR multihop up", retry=STARTING, interval=0.02)
    entry = frr.bfd_peer(NODE)
    assert entry is not None and entry["multihop"] is True


PREFIX = "192.0.2.10/32"


@pytest.fixture
def bgp_topo(bfd_lab: NetnsLab) -> Iterator[tuple[NetnsLab, str, str, FRRInstance]]:
    lab = bfd_lab
    daemons = ("zebra", "bfdd", "bgpd")
    with node_router(lab, daemons, [f"{NODE}/24"], [f"{RTR}/24"], config=router_conf(RTR, NODE)) as topo:
        yield (lab, *topo)


@pytest.mark.netns
def test_bfd_down_takes_bgp_down_both_ways(bgp_topo: tuple[NetnsLab, str, str, FRRInstance]) -> None:
    """Through the real speaker (BGPSpeaker + SpeakerBFD): a BFD failure drops BGP long before the 90 s hold timer."""
    lab, node, rtr, frr = bgp_topo
    cfg = {
        "peer": RTR,
        "local": NODE,
        "profile": PROFILE,
        "bgp": {"my_asn": 64512, "peer_asn": 64513, "router_id": NODE, "hold_time": 90, "routes": [PREFIX]},
    }
    ours = BFDProc(lab, node, cfg)
    # Steady state. FRR may reset the first BGP session itself (it re-registers its BFD session when BGP comes
    # up, which its bgpd can see as a BFD Down and answer with Cease/BFD Down), so allow for a second round.
    ours.seen("bgp", "established", 15.0)
    ours.seen("bfd", True, 10.0)
    wait_until(lambda: kernel_route(lab, rtr, PREFIX) and frr.bfd_status(NODE) == "up", 40.0, "route and BFD up", retry=STARTING, interval=0.1)
    time.sleep(1.0)
    wait_until(lambda: kernel_route(lab, rtr, PREFIX) and frr.bfd_status(NODE) == "up", 40.0, "still up", retry=STARTING, interval=0.1)

    # Our BFD packets are dropped, BGP's TCP still flows: FRR's BFD takes its BGP session and our route down.
    mark = len(ours.lines)
    nft_drop_bfd(lab, node)
    t0 = time.monotonic()
    wait_until(lambda: not kernel_route(lab, rtr, PREFIX), DETECTED, "route withdrawn at the router", retry=STARTING, interval=0.01)
    withdrawn = time.monotonic() - t0
    assert withdrawn < DETECTED, withdrawn  # BFD, not the 90 s hold timer
    # FRR tears its BGP session down itself (Cease/BFD Down, over the TCP that still works). Its bfdd then
    # recreates its session (a Down with diag 3), which we do not report as a failure unless it stays down.
    ours.seen("bgp", "down", 5.0, since=mark)
    nft_clear(lab, node)
    wait_until(lambda: kernel_route(lab, rtr, PREFIX) and frr.bfd_status(NODE) == "up", 40.0, "route and BFD back", retry=STARTING, interval=0.1)
    time.sleep(1.0)
    wait_until(lambda: kernel_route(lab, rtr, PREFIX) and frr.bfd_status(NODE) == "up", 40.0, "still back", retry=STARTING, interval=0.1)
    wait_until(lambda: ours.info()["state"] == "UP", 5.0, "our BFD up", retry=STARTING, interval=0.02)

    # FRR's BFD packets are dropped: our speaker drops its BGP connection at once (no waiting for the hold timer).
    n_lines = len(ours.lines)
    nft_drop_bfd(lab, rtr)
    t1 = time.monotonic()
    down = ours.wait_for("bgp", "down", DETECTED)
    assert down["t"] - t1 < DETECTED, down  # BFD, not the 90 s hold timer
    bfd_down = [m for m in ours.lines[n_lines:] if m.get("bfd") is False]
    assert bfd_down and bfd_down[0]["t"] <= down["t"]
    print(
        f"router withdrew in {withdrawn * 1000:.0f} ms; our BGP dropped {1000 * (down['t'] - t1):.0f} ms after FRR went silent"
    )
