"""``ironlb run`` with a BFDProfile carrying ironlb's authentication annotation, against BIRD 2 (BGP + BFD with
Meticulous Keyed SHA1): the whole path, from the Secret in the state directory to the BFD sessions of the fast
process. Dropping BFD at the router takes ironlb's route down long before the 9 s hold timer."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

import pytest

from tests.support.bfd_frr import nft_clear, nft_drop_bfd
from tests.support.bgp_interop import ROUTER4, BgpLan, bird_bgp_conf, bird_lan, doc, missing, peer_yaml, service_yaml
from tests.support.netns import NetnsLab, netns_available
from tests.support.objects import BGP_ADVERTISED
from tests.support.waits import STARTING, wait_until

pytestmark = pytest.mark.netns

PREFIX = "10.50.0.10/32"


def config(key: str) -> str:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bfdkey", "namespace": "metallb-system"},
        "stringData": {"password": key, "keyID": "9"},
    }
    return (
        BGP_ADVERTISED
        + "---\n"
        + doc(
            """
            apiVersion: metallb.io/v1beta1
            kind: BFDProfile
            metadata: {name: fast, namespace: metallb-system, annotations: {ironlb.io/bfd-auth-secret: bfdkey}}
            spec: {receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}
            """
        )
        + "---\n"
        + json.dumps(secret)
        + "\n---\n"
        + peer_yaml("rtr", 64512, 64513, ROUTER4, connectTime="1s", holdTime="9s", bfdProfile="fast")
    )


def bird_conf(node_ip: str, key: str) -> str:
    """BGP to the node with BFD on, authenticated with ``key`` (Meticulous Keyed SHA1, key ID 9)."""
    bfd = (
        'protocol bfd {\n  interface "*" {\n    min rx interval 300 ms; min tx interval 300 ms; multiplier 3;\n'
        f'    authentication meticulous keyed sha1;\n    password "{key}" {{ id 9; }};\n  }};\n}}\n'
    )
    lines = ("connect retry time 1;", "error wait time 1, 5;", "bfd on;")
    return bird_bgp_conf(node_ip, 64513, 64512, *lines, preamble=bfd)


@pytest.fixture
def lab() -> NetnsLab:
    reason = netns_available() or missing("bird", "birdc", "nft")
    if reason:
        pytest.skip(reason)
    return NetnsLab()


def test_run_with_authenticated_bfd_against_bird(lab: NetnsLab, tmp_path: Path) -> None:
    key = secrets.token_hex(8)  # made up per run

    def router(lan: BgpLan) -> str:
        return bird_conf(lan.node_ip("node1"), key)

    with bird_lan(lab, tmp_path, router) as (lan, bird):
        node_ip = lan.node_ip("node1")
        show = bird.show

        def bfd_up() -> bool:
            return bool(re.search(rf"^{re.escape(node_ip)}\s+\S+\s+Up\b", show("show", "bfd", "sessions"), re.M))

        node = lan.nodes["node1"]
        node.write("config.yaml", config(key))
        node.write("svc.yaml", service_yaml("web", "10.50.0.10"))
        node.start()
        wait_until(lambda: PREFIX in show("show", "route"), 30, "route in BIRD", retry=STARTING, interval=0.1)
        wait_until(bfd_up, 15, "authenticated BFD Up at BIRD", retry=STARTING, interval=0.1)
        assert key not in node.log()  # the key is never logged
        # BFD silenced both ways (BGP's TCP still flows): BIRD's BFD takes the BGP session and our route down.
        nft_drop_bfd(lan.lab, lan.nodes["node1"].ns)
        t0 = time.monotonic()
        wait_until(lambda: PREFIX not in show("show", "route"), 5, "route gone at BIRD", retry=STARTING, interval=0.05)
        assert time.monotonic() - t0 < 5.0  # BFD, not the 9 s hold timer; the figure is bench/bfd_failover.py
        nft_clear(lan.lab, lan.nodes["node1"].ns)
        wait_until(lambda: PREFIX in show("show", "route"), 30, "route back", retry=STARTING, interval=0.1)
        wait_until(bfd_up, 15, "BFD Up again", retry=STARTING, interval=0.1)
