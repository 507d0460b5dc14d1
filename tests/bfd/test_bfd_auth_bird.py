"""BFD Keyed SHA1 / Meticulous Keyed SHA1 authentication (RFC 5880 §6.7.4) against BIRD 2's BFD, in namespaces.

FRR's bfdd has no authentication, BIRD has: both ends share a key made up by the test; a wrong key keeps the
session down on both sides (every packet discarded), and the right one brings it up.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironlb.bfd.wire import AuthType
from ironlb.lab.netns import NetnsLab
from tests.bfd.test_bfd_frr import BFDProc
from tests.support.waits import STARTING, wait_until

NODE, RTR = "10.99.0.1", "10.99.0.2"
PROFILE = {"name": "fast", "receive_interval": 300, "transmit_interval": 300, "detect_multiplier": 3}


class Bird:
    """BIRD 2 with one BFD neighbour, in the router namespace."""

    def __init__(self, lab: NetnsLab, ns: str) -> None:
        self.lab, self.ns = lab, ns
        self.dir = Path(tempfile.mkdtemp(prefix=f"{lab.prefix}-bird-"))
        self.sock = self.dir / "bird.ctl"

    def start(self, auth: str, key: str, key_id: int) -> None:
        conf = self.dir / "bird.conf"
        conf.write_text(
            f"""
router id {RTR};
protocol device {{ }}
protocol bfd {{
  interface "eth0" {{
    min rx interval 300 ms;
    min tx interval 300 ms;
    multiplier 3;
    authentication {auth};
    password "{key}" {{ id {key_id}; }};
  }};
  neighbor {NODE} dev "eth0";
}}
"""
        )
        self.lab.popen(self.ns, ["bird", "-f", "-c", str(conf), "-s", str(self.sock), "-P", str(self.dir / "pid")])

    def sessions(self) -> str:
        out = subprocess.run(
            ["birdc", "-s", str(self.sock), "show", "bfd", "sessions"], capture_output=True, text=True, timeout=10
        )
        return out.stdout

    def state(self) -> str | None:
        m = re.search(rf"^{re.escape(NODE)}\s+\S+\s+(\S+)", self.sessions(), re.M)
        return m.group(1) if m else None

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def bird_link(bfd_lab: NetnsLab) -> Iterator[tuple[NetnsLab, str, Bird]]:
    if shutil.which("bird") is None or shutil.which("birdc") is None:
        pytest.skip("BIRD 2 not installed")
    lab = bfd_lab
    node, rtr = lab.netns("node"), lab.netns("rtr")
    lab.veth(node, "eth0", rtr, "eth0")
    lab.addr(node, "eth0", f"{NODE}/24")
    lab.addr(rtr, "eth0", f"{RTR}/24")
    bird = Bird(lab, rtr)
    try:
        yield lab, node, bird
    finally:
        lab.cleanup()
        bird.cleanup()


@pytest.mark.netns
@pytest.mark.parametrize(
    ("bird_auth", "ours"),
    [("meticulous keyed sha1", AuthType.METICULOUS_KEYED_SHA1), ("keyed sha1", AuthType.KEYED_SHA1)],
)
def test_sha1_authentication_with_bird(bird_link: tuple[NetnsLab, str, Bird], bird_auth: str, ours: AuthType) -> None:
    lab, node, bird = bird_link
    key = secrets.token_hex(8)  # made up per run: no key in the source
    bird.start(bird_auth, key, 7)
    # A wrong key: every packet is discarded both ways, nothing comes up.
    wrong = BFDProc(
        lab, node, {"peer": RTR, "local": NODE, "profile": PROFILE,
                    "auth": {"type": int(ours), "key_id": 7, "key": secrets.token_hex(8).encode().hex()}},
    )  # fmt: skip
    wait_until(lambda: wrong.info()["counters"]["auth_failed"] >= 3, 10.0, "BIRD's packets refused", interval=0.1)
    assert wrong.info()["state"] == "DOWN" and bird.state() in ("Down", "Init", None)
    wrong.send(cmd="close")
    wrong.wait_for("closed", True, 5.0)
    # The right key: Up on both sides, and it stays Up (sequence numbers keep being accepted both ways).
    if ours is AuthType.KEYED_SHA1:  # through the BFDProfile, as the configuration gives it (ironlb's annotation)
        auth = {"type": "keyed-sha1", "key_id": 7, "password": key}
        cfg = {"peer": RTR, "local": NODE, "profile": {**PROFILE, "auth": auth}}
    else:  # through add_peer(auth=...)
        cfg = {"peer": RTR, "local": NODE, "profile": PROFILE,
               "auth": {"type": int(ours), "key_id": 7, "key": key.encode().hex()}}  # fmt: skip
    ours_proc = BFDProc(lab, node, cfg)
    ours_proc.wait_for("bfd", True, 15.0)
    wait_until(lambda: bird.state() == "Up", 10.0, "BIRD Up", retry=STARTING, interval=0.1)
    before = ours_proc.info()["counters"]
    wait_until(
        lambda: ours_proc.info()["counters"]["control_in"] >= before["control_in"] + 10,
        10.0,
        "authenticated packets keep arriving",
        interval=0.2,
    )
    info = ours_proc.info()
    assert info["state"] == "UP" and info["counters"]["auth_failed"] == before["auth_failed"]
    assert bird.state() == "Up", bird.sessions()
    assert [m["bfd"] for m in ours_proc.lines if "bfd" in m] == [True]
