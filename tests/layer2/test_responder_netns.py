"""The Responder against real clients (arping, ndisc6, the Linux neighbour table) in namespaces.

Needs root, iproute2, arping and ndisc6 (Debian packages ``iproute2 arping ndisc6``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from ironlb.lab import waits as lab_waits
from ironlb.layer2.metrics import GRATUITOUS_SENT, REQUESTS_RECEIVED, RESPONSES_SENT
from tests.layer2.conftest import (
    CLIENT_IP6,
    DEV,
    HERE,
    VIP4,
    VIP4_UNANNOUNCED,
    VIP6,
    VIP6_UNANNOUNCED,
    L2Lab,
)
from tests.support.waits import WaitTimeout, wait_until

pytestmark = pytest.mark.netns

_REPLY_MAC = re.compile(r"bytes from ([0-9a-f:]{17}) ", re.IGNORECASE)


def require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages arping ndisc6)")


def arping(lab: L2Lab, ip: str, count: int = 3) -> tuple[int, list[str]]:
    """Return arping's exit code and the MAC of every reply, in order."""
    result = lab.client_run("arping", "-c", str(count), "-W", "0.2", "-i", DEV, ip)
    return result.returncode, [m.lower() for m in _REPLY_MAC.findall(result.stdout)]


def wait_neighbour(lab: L2Lab, ip: str, mac: str, timeout: float) -> dict[str, Any] | None:
    """Poll the client's neighbour entry until it points at ``mac``; the last entry seen."""
    seen: list[dict[str, Any] | None] = [None]

    def points_at_mac() -> bool:
        seen[0] = lab.lab.neighbour(lab.client, DEV, ip)
        return bool(seen[0] and seen[0].get("lladdr") == mac)

    try:
        # A window, not a deadline (the negative controls watch it whole): not stretched like the tests' deadlines.
        lab_waits.wait_until(points_at_mac, timeout, f"the client's neighbour entry for {ip} -> {mac}", interval=0.02)
    except WaitTimeout:
        pass  # the negative controls expect the old entry: the caller asserts on it
    return seen[0]


def test_arping_sees_exactly_the_announcing_node(l2lab: L2Lab) -> None:
    require("arping")
    node_a = l2lab.start_responder(l2lab.node_a)
    node_b = l2lab.start_responder(l2lab.node_b)  # runs, announces nothing: must stay silent
    node_a.announce({VIP4: "ALL"})
    node_b.announce({})

    code, macs = arping(l2lab, VIP4)
    assert code == 0
    assert macs == [l2lab.macs["a"]] * 3

    code, macs = arping(l2lab, VIP4_UNANNOUNCED, count=2)
    assert code != 0 and macs == []

    assert node_a.metric(REQUESTS_RECEIVED, VIP4) == 3
    assert node_a.metric(RESPONSES_SENT, VIP4) == 3
    assert node_a.metric(GRATUITOUS_SENT, VIP4) >= 2  # request + reply of the first round
    assert node_b.metric(REQUESTS_RECEIVED, VIP4) == 0


def test_interface_restriction_is_honoured(l2lab: L2Lab) -> None:
    require("arping")
    node_a = l2lab.start_responder(l2lab.node_a)
    node_a.announce({VIP4: ["eth9"]})  # announced, but not on the interface the request arrives on
    code, macs = arping(l2lab, VIP4, count=2)
    assert code != 0 and macs == []
    node_a.announce({VIP4: [DEV]})
    code, macs = arping(l2lab, VIP4, count=2)
    assert code == 0 and macs == [l2lab.macs["a"]] * 2


def test_ndisc6_resolves_an_announced_ipv6(l2lab: L2Lab) -> None:
    require("ndisc6")
    node_a = l2lab.start_responder(l2lab.node_a)
    l2lab.start_responder(l2lab.node_b).announce({})
    node_a.announce({VIP6: "ALL"})

    result = l2lab.client_run("ndisc6", "-1", "-r", "3", "-w", "300", VIP6, DEV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Target link-layer address: {l2lab.macs['a'].upper()}" in result.stdout

    result = l2lab.client_run("ndisc6", "-1", "-r", "2", "-w", "200", VIP6_UNANNOUNCED, DEV)
    assert result.returncode != 0 and "Target link-layer address" not in result.stdout
    assert node_a.metric(RESPONSES_SENT, VIP6) >= 1


def probe(l2lab: L2Lab, dst_mac: str, target: str, *extra: str) -> dict[str, Any]:
    result = l2lab.client_run(
        sys.executable,
        str(HERE / "ndp_probe.py"),
        DEV,
        dst_mac,
        CLIENT_IP6,
        target,
        "--timeout",
        "0.7",
        *extra,
        check=True,
    )
    reply: dict[str, Any] = json.loads(result.stdout)
    return reply


def test_crafted_unicast_nud_probe_without_lladdr_is_answered(l2lab: L2Lab) -> None:
    node_a = l2lab.start_responder(l2lab.node_a)
    node_a.announce({VIP6: "ALL"})
    reply = probe(l2lab, l2lab.macs["a"], VIP6)
    assert reply == {
        "reply": "na",
        "eth_dst": l2lab.macs["c"],  # no source LL option: the frame's Ethernet source
        "eth_src": l2lab.macs["a"],
        "dst": CLIENT_IP6,
        "hop_limit": 255,
        "solicited": True,
        "override": False,
        "target_lladdr": l2lab.macs["a"],
    }
    assert probe(l2lab, l2lab.macs["a"], VIP6_UNANNOUNCED) == {"reply": None}
    # Unicast to another node's MAC: not ours to answer.
    assert probe(l2lab, l2lab.macs["b"], VIP6) == {"reply": None}


def test_kernel_nud_probe_makes_the_entry_reachable(l2lab: L2Lab) -> None:
    node_a = l2lab.start_responder(l2lab.node_a)
    node_a.announce({VIP6: "ALL"})
    lab = l2lab.lab
    lab.run(l2lab.client, ["sysctl", "-qw", f"net.ipv6.neigh.{DEV}.delay_first_probe_time=0"])
    # A STALE entry plus traffic makes Linux verify it with unicast NS (DELAY -> PROBE),
    # which only a responder that answers unicast solicitations can confirm.
    lab.run(l2lab.client, ["ip", "-6", "neigh", "replace", VIP6, "lladdr", l2lab.macs["a"], "dev", DEV, "nud", "stale"])
    before = node_a.metric(REQUESTS_RECEIVED, VIP6)
    l2lab.client_send_udp(VIP6)
    seen: list[dict[str, Any] | None] = [None]

    def reachable() -> bool:
        seen[0] = lab.neighbour(l2lab.client, DEV, VIP6)
        return bool(seen[0] and "REACHABLE" in seen[0].get("state", []))

    with contextlib.suppress(WaitTimeout):  # the assertions below say what was seen
        wait_until(reachable, 4.0, f"{VIP6} REACHABLE at the client", interval=0.05)
    entry = seen[0]
    assert entry is not None and "REACHABLE" in entry["state"], entry
    assert entry["lladdr"] == l2lab.macs["a"]
    assert node_a.metric(REQUESTS_RECEIVED, VIP6) > before


@pytest.mark.parametrize("gratuitous", [True, False], ids=["gratuitous", "no-gratuitous-control"])
def test_takeover_moves_the_client_ipv4(l2lab: L2Lab, gratuitous: bool) -> None:
    node_a = l2lab.start_responder(l2lab.node_a)
    duration = "5" if gratuitous else "0"  # 0: the burst never starts (negative control)
    node_b = l2lab.start_responder(l2lab.node_b, "--gratuitous-duration", duration)
    node_a.announce({VIP4: "ALL"})
    l2lab.client_send_udp(VIP4)
    entry = wait_neighbour(l2lab, VIP4, l2lab.macs["a"], timeout=2.0)
    assert entry is not None and entry["lladdr"] == l2lab.macs["a"]

    node_a.announce({})
    node_b.announce({VIP4: "ALL"})
    entry = wait_neighbour(l2lab, VIP4, l2lab.macs["b"], timeout=1.0)
    assert entry is not None
    if gratuitous:
        assert entry["lladdr"] == l2lab.macs["b"]
        assert node_b.metric(GRATUITOUS_SENT, VIP4) >= 2
    else:
        assert entry["lladdr"] == l2lab.macs["a"], "without gratuitous ARP the client keeps the old MAC"
        assert node_b.metric(GRATUITOUS_SENT, VIP4) == 0


@pytest.mark.parametrize("gratuitous", [True, False], ids=["unsolicited-na", "no-na-control"])
def test_takeover_moves_the_client_ipv6(l2lab: L2Lab, gratuitous: bool) -> None:
    node_a = l2lab.start_responder(l2lab.node_a)
    node_b = l2lab.start_responder(l2lab.node_b, "--gratuitous-duration", "5" if gratuitous else "0")
    node_a.announce({VIP6: "ALL"})
    l2lab.client_send_udp(VIP6)
    entry = wait_neighbour(l2lab, VIP6, l2lab.macs["a"], timeout=2.0)
    assert entry is not None and entry["lladdr"] == l2lab.macs["a"]

    node_a.announce({})
    node_b.announce({VIP6: "ALL"})
    entry = wait_neighbour(l2lab, VIP6, l2lab.macs["b"], timeout=1.0)
    assert entry is not None
    expected = l2lab.macs["b"] if gratuitous else l2lab.macs["a"]
    assert entry["lladdr"] == expected


def test_a_thousand_ip_hand_over_is_claimed_while_the_old_owner_reads_nothing(l2lab: L2Lab, tmp_path: Path) -> None:
    """A stop hands 1,000 IPs over while the old owner's loop is held (a loaded node, descheduled): the
    successor's gratuitous ARPs (2,000 frames in one burst, sent once: no repeat within the test) wait in the old
    owner's receive queue, and every one is read as a claim once the loop runs again, instead of the queue
    overflowing and the old owner answering the lost IPs until the hand-over timeout (an hour here)."""
    ips = [str(ipaddress.IPv4Address("10.99.16.0") + i) for i in range(1000)]
    node_a = l2lab.start_responder(l2lab.node_a, "--gratuitous-duration", "0")
    node_b = l2lab.start_responder(l2lab.node_b, "--gratuitous-interval", "600", "--gratuitous-duration", "600")
    node_a.announce(dict.fromkeys(ips, "ALL"))
    assert node_a.command(cmd="release", hand_over=ips, timeout=3600) == {"ok": True}
    assert node_a.command(cmd="releasing") == {"releasing": 1000}
    go = tmp_path / "go"
    assert node_a.command(cmd="stall", until=str(go)) == {"stalling": True}
    node_b.announce(dict.fromkeys(ips, "ALL"))  # the burst is on the wire when this returns
    go.touch()
    assert node_a.read(timeout=30) == {"ok": True}
    left: list[int] = []

    def all_claimed() -> bool:
        left.append(node_a.command(cmd="releasing")["releasing"])
        return left[-1] == 0

    with contextlib.suppress(WaitTimeout):  # the assertion says how many were left
        wait_until(all_claimed, 20, "every handed-over IP claimed", interval=0.1)
    assert left[-1] == 0, f"{left[-1]} of 1,000 IPs never heard claimed"
