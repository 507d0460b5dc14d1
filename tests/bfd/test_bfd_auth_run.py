"""``ironlb run`` with a BFDProfile carrying ironlb's authentication annotation, against BIRD 2 (BGP + BFD with
Meticulous Keyed SHA1): the whole path, from the Secret in the state directory to the BFD sessions of the fast
process. Dropping BFD at the router takes ironlb's route down long before the 9 s hold timer."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bfd_frr import nft_clear, nft_drop_bfd
from tests.support.bgp_interop import ROUTER4, BgpLan, doc, missing, peer_yaml, service_yaml
from tests.support.netns import NetnsLab, netns_available
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
            spec: {ipAddressPools: [bgp]}
            ---
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


@pytest.fixture
def one_node(tmp_path: Path) -> Iterator[BgpLan]:
    reason = netns_available() or missing("bird", "birdc", "nft")
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


def test_run_with_authenticated_bfd_against_bird(one_node: BgpLan) -> None:
    lan = one_node
    key = secrets.token_hex(8)  # made up per run
    node_ip = lan.node_ip("node1")
    d = Path(tempfile.mkdtemp(prefix=f"{lan.lab.prefix}-bird-"))
    conf = d / "bird.conf"
    conf.write_text(
        f"""
router id {ROUTER4};
protocol device {{ }}
protocol bfd {{
  interface "*" {{
    min rx interval 300 ms; min tx interval 300 ms; multiplier 3;
    authentication meticulous keyed sha1;
    password "{key}" {{ id 9; }};
  }};
}}
protocol bgp ironlb {{
  local {ROUTER4} as 64513;
  neighbor {node_ip} as 64512;
  hold time 9;
  connect retry time 1;
  error wait time 1, 5;
  bfd on;
  ipv4 {{ import all; export none; }};
}}
"""
    )
    sock = d / "bird.ctl"
    lan.lab.popen(lan.router_ns, ["bird", "-f", "-c", str(conf), "-s", str(sock), "-P", str(d / "bird.pid")])

    def show(*cmd: str) -> str:
        return subprocess.run(["birdc", "-s", str(sock), *cmd], capture_output=True, text=True, timeout=10).stdout

    def bfd_up() -> bool:
        return bool(re.search(rf"^{re.escape(node_ip)}\s+\S+\s+Up\b", show("show", "bfd", "sessions"), re.M))

    try:
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
    finally:
        lan.stop_all()
        lan.lab.cleanup()
        shutil.rmtree(d, ignore_errors=True)
