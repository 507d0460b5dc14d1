"""Basic interop with BIRD 2 and GoBGP 3: session up, one prefix with standard and large communities, withdrawal."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.bgp_interop import ROUTER4, BgpLan, bird_bgp_conf, bird_lan, doc, missing, peer_yaml, service_yaml
from tests.support.netns import NetnsLab, fresh_lab, netns_available
from tests.support.objects import BGP_POOL, bgp_advertisement_yaml, documents
from tests.support.waits import STARTING, wait_until

pytestmark = pytest.mark.netns

ADVERTISED = documents(BGP_POOL, bgp_advertisement_yaml("hosts", ["bgp"], communities=["64512:100", "large:64512:7:8"]))
CONFIG = (
    ADVERTISED
    + "---\n"
    + peer_yaml("rtr", 64512, 64513, ROUTER4, connectTime="1s", holdTime="9s")
)


@pytest.fixture
def one_node(tmp_path: Path) -> Iterator[BgpLan]:
    with fresh_lab() as lab:
        lan = BgpLan(lab, tmp_path, nodes=1)
        try:
            yield lan
        except Exception:
            print(lan.logs())
            raise
        finally:
            lan.stop_all()


def with_prefix(view: Any, prefix: str = "10.50.0.10/32") -> Any:
    """``view`` if it mentions ``prefix`` (for poll), else None."""
    return view if prefix in view else None


def start_node(lan: BgpLan) -> None:
    node = lan.nodes["node1"]
    node.write("config.yaml", CONFIG)
    node.write("svc.yaml", service_yaml("web", "10.50.0.10"))
    node.start()


def bird_lab() -> NetnsLab:
    """A lab for BIRD's tests (skipped without namespaces or BIRD)."""
    if why := netns_available() or missing("bird", "birdc"):
        pytest.skip(why)
    return NetnsLab()


def test_bird2(tmp_path: Path) -> None:
    def router(lan: BgpLan) -> str:
        return bird_bgp_conf(lan.node_ip("node1"), 64513, 64512)

    with bird_lan(bird_lab(), tmp_path, router) as (lan, bird):
        show = bird.show
        start_node(lan)
        wait_until(lambda: re.search(r"ironlb\s+BGP\s+\S+\s+up", show("show", "protocols")), 20, "BIRD session up", retry=STARTING, interval=0.1)
        out = wait_until(lambda: with_prefix(show("show", "route", "all")), 10, "route in BIRD", retry=STARTING, interval=0.1)
        assert f"BGP.next_hop: {lan.node_ip('node1')}" in out, out
        assert "BGP.as_path: 64512" in out, out
        assert "BGP.community: (64512,100)" in out, out
        assert "BGP.large_community: (64512, 7, 8)" in out, out
        lan.nodes["node1"].remove("svc.yaml")
        wait_until(lambda: "10.50.0.10/32" not in show("show", "route", "all"), 5, "withdrawal in BIRD", retry=STARTING, interval=0.1)


def gobgp_rib(lan: BgpLan) -> dict[str, Any]:
    out = lan.lab.run(lan.router_ns, ["gobgp", "-j", "global", "rib"], check=False).stdout
    data = json.loads(out or "{}") or {}
    return data if isinstance(data, dict) else {}  # a starting gobgpd may answer with an error text


@contextlib.contextmanager
def gobgpd(lan: BgpLan, *, connect_retry: int | None = None) -> Iterator[BgpLan]:
    """GoBGP (AS 64513, hold time 9 s) in the router namespace, peering with node1; the lab is torn down after."""
    d = Path(tempfile.mkdtemp(prefix=f"{lan.lab.prefix}-gobgp-"))
    retry = f"connect-retry = {connect_retry}\n" if connect_retry is not None else ""
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
            """
        )
        + textwrap.indent(retry + "hold-time = 9\nkeepalive-interval = 3\n", "    ")
    )
    cmd = ["gobgpd", "-f", str(conf), "-p", "--api-hosts", "127.0.0.1:50051", "-l", "warn"]
    lan.lab.popen(lan.router_ns, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield lan
    finally:
        lan.stop_all()
        lan.lab.cleanup()
        subprocess.run(["rm", "-rf", str(d)], check=False)


def test_gobgp(one_node: BgpLan) -> None:
    if why := missing("gobgpd", "gobgp"):
        pytest.skip(why)
    with gobgpd(one_node) as lan:
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


PASSIVE_PEER = json.loads(peer_yaml("rtr", 64512, 64513, ROUTER4, holdTime="9s"))
PASSIVE_PEER["metadata"]["annotations"] = {"ironlb.io/passive": "true"}
PASSIVE_CONFIG = ADVERTISED + "---\n" + json.dumps(PASSIVE_PEER) + "\n"


def start_passive_node(lan: BgpLan) -> None:
    node = lan.nodes["node1"]
    node.write("config.yaml", PASSIVE_CONFIG)
    node.write("svc.yaml", service_yaml("web", "10.50.0.10"))
    node.start()


def assert_only_inbound(lan: BgpLan) -> None:
    log = lan.nodes["node1"].log()
    assert "BGP listener: connection from 192.168.1.100" in log and "BGP connect to" not in log, log


def test_bird2_connects_to_a_passive_node(tmp_path: Path) -> None:
    """BIRD dials (its default), the node with ``ironlb.io/passive`` only accepts: the session comes up."""
    assert "ironlb.io/passive" in PASSIVE_CONFIG and "connectTime" not in PASSIVE_CONFIG

    def router(lan: BgpLan) -> str:
        return bird_bgp_conf(lan.node_ip("node1"), 64513, 64512, "connect retry time 1;")

    with bird_lan(bird_lab(), tmp_path, router) as (lan, bird):
        show = bird.show
        start_passive_node(lan)
        wait_until(lambda: re.search(r"ironlb\s+BGP\s+\S+\s+up", show("show", "protocols")), 20, "BIRD session up", retry=STARTING, interval=0.1)
        out = wait_until(lambda: with_prefix(show("show", "route", "all")), 10, "route in BIRD", retry=STARTING, interval=0.1)
        assert f"BGP.next_hop: {lan.node_ip('node1')}" in out, out
        assert_only_inbound(lan)


def test_gobgp_connects_to_a_passive_node(one_node: BgpLan) -> None:
    """GoBGP dials, the passive node accepts: the session comes up and GoBGP has the route."""
    if why := missing("gobgpd", "gobgp"):
        pytest.skip(why)
    with gobgpd(one_node, connect_retry=1) as lan:
        start_passive_node(lan)
        rib = wait_until(lambda: with_prefix(gobgp_rib(lan)), 30, "route in GoBGP", retry=STARTING, interval=0.1)
        (path,) = rib["10.50.0.10/32"]
        assert {a["type"]: a for a in path["attrs"]}[3]["nexthop"] == lan.node_ip("node1")
        assert_only_inbound(lan)
