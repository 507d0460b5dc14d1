"""Basic interop with BIRD 2 and GoBGP 3: session up, one prefix with standard and large communities, withdrawal."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.bgp_interop import ROUTER4, BgpLan, doc, missing, peer_yaml, service_yaml
from tests.support.netns import NetnsLab, netns_available
from tests.support.waits import STARTING, wait_until

pytestmark = pytest.mark.netns

CONFIG = (
    doc(
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: bgp, namespace: metallb-system}
        spec: {addresses: ["10.50.0.0/24"]}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: hosts, namespace: metallb-system}
        spec: {ipAddressPools: [bgp], communities: ["64512:100", "large:64512:7:8"]}
        """
    )
    + "---\n"
    + peer_yaml("rtr", 64512, 64513, ROUTER4, connectTime="1s", holdTime="9s")
)


@pytest.fixture
def one_node(tmp_path: Path) -> Iterator[BgpLan]:
    reason = netns_available()
    if reason:
        pytest.skip(reason)
    lab = NetnsLab()
    lan = BgpLan(lab, tmp_path, nodes=1)
    try:
        yield lan
    except Exception:
        print(lan.logs())
        raise
    finally:
        lan.stop_all()
        lab.cleanup()


def with_prefix(view: Any, prefix: str = "10.50.0.10/32") -> Any:
    """``view`` if it mentions ``prefix`` (for poll), else None."""
    return view if prefix in view else None


def start_node(lan: BgpLan) -> None:
    node = lan.nodes["node1"]
    node.write("config.yaml", CONFIG)
    node.write("svc.yaml", service_yaml("web", "10.50.0.10"))
    node.start()


def test_bird2(one_node: BgpLan) -> None:
    if why := missing("bird", "birdc"):
        pytest.skip(why)
    lan = one_node
    d = Path(tempfile.mkdtemp(prefix=f"{lan.lab.prefix}-bird-"))
    conf = d / "bird.conf"
    conf.write_text(
        doc(
            f"""
            router id {ROUTER4};
            protocol device {{ }}
            protocol bgp ironlb {{
              local {ROUTER4} as 64513;
              neighbor {lan.node_ip("node1")} as 64512;
              hold time 9;
              ipv4 {{ import all; export none; }};
            }}
            """
        )
    )
    sock = d / "bird.ctl"
    lan.lab.popen(lan.router_ns, ["bird", "-f", "-c", str(conf), "-s", str(sock), "-P", str(d / "bird.pid")])

    def show(*cmd: str) -> str:
        return subprocess.run(["birdc", "-s", str(sock), *cmd], capture_output=True, text=True, timeout=10).stdout

    try:
        start_node(lan)
        wait_until(lambda: re.search(r"ironlb\s+BGP\s+\S+\s+up", show("show", "protocols")), 20, "BIRD session up", retry=STARTING, interval=0.1)
        out = wait_until(lambda: with_prefix(show("show", "route", "all")), 10, "route in BIRD", retry=STARTING, interval=0.1)
        assert f"BGP.next_hop: {lan.node_ip('node1')}" in out, out
        assert "BGP.as_path: 64512" in out, out
        assert "BGP.community: (64512,100)" in out, out
        assert "BGP.large_community: (64512, 7, 8)" in out, out
        lan.nodes["node1"].remove("svc.yaml")
        wait_until(lambda: "10.50.0.10/32" not in show("show", "route", "all"), 5, "withdrawal in BIRD", retry=STARTING, interval=0.1)
    finally:
        lan.stop_all()
        lan.lab.cleanup()
        subprocess.run(["rm", "-rf", str(d)], check=False)


def gobgp_rib(lan: BgpLan) -> dict[str, Any]:
    out = lan.lab.run(lan.router_ns, ["gobgp", "-j", "global", "rib"], check=False).stdout
    data = json.loads(out or "{}") or {}
    return data if isinstance(data, dict) else {}  # a starting gobgpd may answer with an error text


def test_gobgp(one_node: BgpLan) -> None:
    if why := missing("gobgpd", "gobgp"):
        pytest.skip(why)
    lan = one_node
    d = Path(tempfile.mkdtemp(prefix=f"{lan.lab.prefix}-gobgp-"))
    conf = d / "gobgpd.toml"
    conf.write_text(
        doc(
            f"""
            [global.config]
              as = 64513
              router-id = "{ROUTER4}"
            [[neighbors]]
              [neighbors.config]
                neighbor-address = "{lan.node_ip("node1")}"
                peer-as = 64512
              [neighbors.timers.config]
                hold-time = 9
                keepalive-interval = 3
            """
        )
    )
    cmd = ["gobgpd", "-f", str(conf), "-p", "--api-hosts", "127.0.0.1:50051", "-l", "warn"]
    lan.lab.popen(lan.router_ns, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        start_node(lan)

        def neighbor_up() -> bool:
            out = lan.lab.run(lan.router_ns, ["gobgp", "-j", "neighbor"], check=False).stdout
            peers = json.loads(out or "[]") or []
            if not isinstance(peers, list):  # a starting gobgpd may answer with something else (an error text)
                return False
            return any(
                isinstance(p, dict) and p.get("state", {}).get("session_state") in (6, "established", "ESTABLISHED")
                for p in peers
            )

        wait_until(neighbor_up, 20, "GoBGP session up", retry=STARTING, interval=0.1)
        rib = wait_until(lambda: with_prefix(gobgp_rib(lan)), 10, "route in GoBGP", retry=STARTING, interval=0.1)
        (path,) = rib["10.50.0.10/32"]
        attrs = {a["type"]: a for a in path["attrs"]}
        assert attrs[3]["nexthop"] == lan.node_ip("node1")
        assert attrs[8]["communities"] == [64512 << 16 | 100]
        (large,) = attrs[32]["value"]
        assert (large["ASN"], large["LocalData1"], large["LocalData2"]) == (64512, 7, 8)
        lan.nodes["node1"].remove("svc.yaml")
        wait_until(lambda: "10.50.0.10/32" not in gobgp_rib(lan), 5, "withdrawal in GoBGP", retry=STARTING, interval=0.1)
    finally:
        lan.stop_all()
        lan.lab.cleanup()
        subprocess.run(["rm", "-rf", str(d)], check=False)


PASSIVE_PEER = json.loads(peer_yaml("rtr", 64512, 64513, ROUTER4, holdTime="9s"))
PASSIVE_PEER["metadata"]["annotations"] = {"ironlb.io/passive": "true"}
PASSIVE_CONFIG = CONFIG.split("---\n{")[0] + "---\n" + json.dumps(PASSIVE_PEER) + "\n"


def start_passive_node(lan: BgpLan) -> None:
    node = lan.nodes["node1"]
    node.write("config.yaml", PASSIVE_CONFIG)
    node.write("svc.yaml", service_yaml("web", "10.50.0.10"))
    node.start()


def assert_only_inbound(lan: BgpLan) -> None:
    log = lan.nodes["node1"].log()
    assert "BGP listener: connection from 192.168.1.100" in log and "BGP connect to" not in log, log


def test_bird2_connects_to_a_passive_node(one_node: BgpLan) -> None:
    """BIRD dials (its default), the node with ``ironlb.io/passive`` only accepts: the session comes up."""
    if why := missing("bird", "birdc"):
        pytest.skip(why)
    lan = one_node
    assert "ironlb.io/passive" in PASSIVE_CONFIG and "connectTime" not in PASSIVE_CONFIG
    d = Path(tempfile.mkdtemp(prefix=f"{lan.lab.prefix}-bird-"))
    conf = d / "bird.conf"
    conf.write_text(
        doc(
            f"""
            router id {ROUTER4};
            protocol device {{ }}
            protocol bgp ironlb {{
              local {ROUTER4} as 64513;
              neighbor {lan.node_ip("node1")} as 64512;
              hold time 9;
              connect retry time 1;
              ipv4 {{ import all; export none; }};
            }}
            """
        )
    )
    sock = d / "bird.ctl"
    lan.lab.popen(lan.router_ns, ["bird", "-f", "-c", str(conf), "-s", str(sock), "-P", str(d / "bird.pid")])

    def show(*cmd: str) -> str:
        return subprocess.run(["birdc", "-s", str(sock), *cmd], capture_output=True, text=True, timeout=10).stdout

    try:
        start_passive_node(lan)
        wait_until(lambda: re.search(r"ironlb\s+BGP\s+\S+\s+up", show("show", "protocols")), 20, "BIRD session up", retry=STARTING, interval=0.1)
        out = wait_until(lambda: with_prefix(show("show", "route", "all")), 10, "route in BIRD", retry=STARTING, interval=0.1)
        assert f"BGP.next_hop: {lan.node_ip('node1')}" in out, out
        assert_only_inbound(lan)
    finally:
        lan.stop_all()
        lan.lab.cleanup()
        subprocess.run(["rm", "-rf", str(d)], check=False)


def test_gobgp_connects_to_a_passive_node(one_node: BgpLan) -> None:
    """GoBGP dials, the passive node accepts: the session comes up and GoBGP has the route."""
    if why := missing("gobgpd", "gobgp"):
        pytest.skip(why)
    lan = one_node
    d = Path(tempfile.mkdtemp(prefix=f"{lan.lab.prefix}-gobgp-"))
    conf = d / "gobgpd.toml"
    conf.write_text(
        doc(
            f"""
            [global.config]
              as = 64513
              router-id = "{ROUTER4}"
            [[neighbors]]
              [neighbors.config]
                neighbor-address = "{lan.node_ip("node1")}"
                peer-as = 64512
              [neighbors.timers.config]
                connect-retry = 1
                hold-time = 9
                keepalive-interval = 3
            """
        )
    )
    cmd = ["gobgpd", "-f", str(conf), "-p", "--api-hosts", "127.0.0.1:50051", "-l", "warn"]
    lan.lab.popen(lan.router_ns, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        start_passive_node(lan)
        rib = wait_until(lambda: with_prefix(gobgp_rib(lan)), 30, "route in GoBGP", retry=STARTING, interval=0.1)
        (path,) = rib["10.50.0.10/32"]
        assert {a["type"]: a for a in path["attrs"]}[3]["nexthop"] == lan.node_ip("node1")
        assert_only_inbound(lan)
    finally:
        lan.stop_all()
        lan.lab.cleanup()
        subprocess.run(["rm", "-rf", str(d)], check=False)
