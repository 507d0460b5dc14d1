"""Interop: our session shell against FRR 8.4's bgpd, in two network namespaces joined by a veth pair."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bgp.conftest import FRR, Speaker
from tests.support.netns import NetnsLab
from tests.support.waits import STARTING, wait_until

NODE4, RTR4 = "10.98.0.1", "10.98.0.2"
NODE6, RTR6 = "fd00:98::1", "fd00:98::2"
PASSWORD = "ironlb-md5"

ROUTER_CONF = f"""
router bgp 64513
 bgp router-id {RTR4}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor {NODE4} remote-as 64512
 neighbor {NODE4} password {PASSWORD}
 neighbor {NODE4} timers 3 9
 neighbor {NODE4} graceful-restart
 address-family ipv4 unicast
  neighbor {NODE4} activate
 exit-address-family
 address-family ipv6 unicast
  neighbor {NODE4} activate
 exit-address-family
"""



@pytest.mark.netns
def test_advertise_to_frr(netns_lab: NetnsLab) -> None:
    lab = netns_lab
    node = lab.netns("node")
    rtr = lab.netns("rtr")
    lab.veth(node, "eth0", rtr, "eth0")
    lab.addr(node, "eth0", f"{NODE4}/24", f"{NODE6}/64")
    lab.addr(rtr, "eth0", f"{RTR4}/24", f"{RTR6}/64")
    frr = FRR(lab, rtr)
    try:
        frr.start()
        frr.configure(ROUTER_CONF)
        # Start at once: FRR refuses sessions for ~1.1 s after start, so this exercises the retry path.
        speaker = Speaker(
            lab,
            node,
            {
                "my_asn": 64512,
                "peer_asn": 64513,
                "peer_address": RTR4,
                "router_id": NODE4,
                "hold_time": 9,
                "password": PASSWORD,
                "graceful_restart": True,
                "next_hop_ipv6": NODE6,
                "connect_time": 2,
            },
        )
        routes = {
            "192.0.2.10/32": {"communities": ["64512:100", "no-export"], "large": ["64512:1:2"]},
            "192.0.2.11/32": {"communities": ["64512:100", "no-export"], "large": ["64512:1:2"]},
            "192.0.2.12/32": {"communities": ["64512:200"]},
            "2001:db8:98::10/128": {"communities": ["64512:600"]},
        }
        speaker.send(cmd="routes", routes=routes)
        est = speaker.wait_for("event", "established", timeout=20)
        assert est["hold"] == 9 and est["gr"] is True

        def table4() -> dict[str, Any]:
            routes_ = frr.json("show bgp ipv4 unicast json").get("routes", {})
            return routes_ if len(routes_) == 3 else {}

        got = wait_until(table4, 10, "3 IPv4 routes in FRR", retry=STARTING, interval=0.2)
        for prefix in ("192.0.2.10/32", "192.0.2.11/32", "192.0.2.12/32"):
            (path,) = got[prefix]
            assert path["valid"] is True
            assert path["nexthops"][0]["ip"] == NODE4
            assert path.get("path", "") == "64512"
        detail = frr.json("show bgp ipv4 unicast 192.0.2.10/32 json")["paths"][0]
        assert sorted(detail["community"]["string"].split()) == ["64512:100", "no-export"]
        assert detail["largeCommunity"]["string"] == "64512:1:2"
        assert detail["origin"] == "IGP"
        detail = frr.json("show bgp ipv4 unicast 192.0.2.12/32 json")["paths"][0]
        assert detail["community"]["string"] == "64512:200"
        assert "largeCommunity" not in detail

        def table6() -> dict[str, Any]:
            routes_: dict[str, Any] = frr.json("show bgp ipv6 unicast json").get("routes", {})
            return routes_

        got6 = wait_until(table6, 10, "IPv6 route in FRR", retry=STARTING, interval=0.2)
        (path6,) = got6["2001:db8:98::10/128"]
        assert any(h["ip"] == NODE6 for h in path6["nexthops"])

        neighbor = frr.json(f"show bgp neighbor {NODE4} json")[NODE4]
        assert neighbor["bgpState"] == "Established"
        assert neighbor["bgpTimerHoldTimeMsecs"] == 9000

        # Withdraw one prefix; FRR drops exactly it.
        del routes["192.0.2.11/32"]
        speaker.send(cmd="routes", routes=routes)
        wait_until(lambda: set(frr.json("show bgp ipv4 unicast json").get("routes", {})) == {"192.0.2.10/32", "192.0.2.12/32"}, 10, "withdrawal of 192.0.2.11/32", retry=STARTING, interval=0.2)

        # Administrative close: FRR sees our cease and drops the session.
        speaker.send(cmd="close")
        speaker.wait_for("closed", True, timeout=10)
        wait_until(lambda: frr.json(f"show bgp neighbor {NODE4} json")[NODE4]["bgpState"] != "Established", 10, "FRR to notice the close", retry=STARTING, interval=0.2)
        last = frr.json(f"show bgp neighbor {NODE4} json")[NODE4]
        assert "Administrative Shutdown" in str(last.get("lastResetDueTo", "")) + str(last), last
    except Exception:
        print(frr.logs())
        raise
    finally:
        lab.cleanup()
        frr.cleanup()
