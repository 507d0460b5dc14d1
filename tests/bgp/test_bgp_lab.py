"""The BGP interop topology helpers of ``tests/support/bgp_interop.py``: router configuration and clean-up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.bgp_interop import BgpLan, bird_bgp_conf, frr_bgp_conf, frr_lan
from tests.support.netns import NetnsLab
from tests.support.waits import STARTING, wait_until


def test_frr_conf_activates_each_neighbor_in_its_own_family() -> None:
    neighbors = [("192.168.1.11", 64513, ["timers connect 1"]), ("fd00:1::b", 64513, [])]
    conf = frr_bgp_conf(64512, neighbors, options=["bgp graceful-restart"])
    lines = conf.splitlines()
    assert lines[:5] == [
        "router bgp 64512",
        " bgp router-id 192.168.1.100",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",  # before any neighbor, or FRR activates it in IPv4
        " bgp graceful-restart",
    ]
    assert " neighbor 192.168.1.11 timers connect 1" in lines
    v4, v6 = conf.index("address-family ipv4 unicast"), conf.index("address-family ipv6 unicast")
    assert "neighbor 192.168.1.11 activate" in conf[v4:v6] and "fd00:1::b activate" not in conf[v4:v6]
    assert "neighbor fd00:1::b activate" in conf[v6:]
    assert "address-family ipv6" not in frr_bgp_conf(64512, [("192.168.1.11", 64513, [])])


def test_bird_conf_has_the_session_and_the_extra_lines() -> None:
    conf = bird_bgp_conf("192.168.1.11", 64513, 64512, "bfd on;", preamble="protocol bfd { }\n")
    assert conf.index("protocol bfd") < conf.index("protocol bgp ironlb")
    assert "  local 192.168.1.100 as 64513;\n  neighbor 192.168.1.11 as 64512;\n" in conf
    assert "  bfd on;\n" in conf


def namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{prefix}-")]


@pytest.mark.netns
def test_frr_lan_is_configured_and_removed_whatever_happens_inside(netns_lab: NetnsLab, tmp_path: Path) -> None:
    """FRR takes the configuration (its neighbors are the nodes); an error inside the block propagates and leaves
    no namespace, process or FRR directory behind."""

    def conf(lan: BgpLan) -> str:
        return frr_bgp_conf(64512, [(lan.node_ip(n), 64513, []) for n in sorted(lan.nodes)])

    with pytest.raises(RuntimeError, match="inside"), frr_lan(netns_lab, tmp_path, nodes=2, config=conf) as (lan, frr):
        assert len(namespaces(netns_lab.prefix)) == 4  # switch, two nodes, router
        peers = wait_until(lambda: frr.json("show bgp summary json")["ipv4Unicast"]["peers"], 10, "FRR's peers",
                           retry=(*STARTING, KeyError))  # fmt: skip
        assert set(peers) == {"192.168.1.11", "192.168.1.12"}
        lan.nodes["node1"].start()
        raise RuntimeError("inside")
    assert namespaces(netns_lab.prefix) == []
    assert not frr.dir.exists()
    assert lan.nodes["node1"].proc is None and netns_lab.processes == []
