"""BFD echo benchmark: the router stops forwarding while BFD control packets still flow; how long until ironlb's
session is Down (diag 2, echo function failed)?

Topology (network namespaces, veth): ``node`` runs one BFD session of ironlb (``tests/bfd/bfd_proc.py``, profile
300 ms x 3, ``echoMode`` with ``echoInterval`` 50 ms); ``rtr`` runs FRR 8.4's bfdd with ``echo-mode`` (echo
receive interval 50 ms) and IPv4 forwarding on, so it loops our echo packets back. Per trial: wait until the
session has been Up for 1 s and our echo packets come back, then make the router's data plane drop what it
forwards to UDP 3785 (nftables, forward hook): control packets, which the router receives itself, keep flowing.
Measured from just before the rule is added until the session's ``bfd: false`` line (the child's monotonic clock,
the same as ours). Without echo the same failure is never detected by BFD: a control-only session (namespace
``node2``, through the same router) is checked to stay Up meanwhile.

Needs root, iproute2, nftables and FRR. Run from the repository root: ``python -m bench.bfd_echo [--trials 15] [--no-results]``.
"""

from __future__ import annotations

import os
import platform
import secrets
import sys
import time
from datetime import UTC, datetime

from tests.bfd.test_bfd_frr import BFDProc
from tests.support.bfd_frr import node_router
from tests.support.waits import STARTING, wait_until

from bench.bfd_failover import bench_args, cannot_run, percentile, write_results
from ironlb.lab.netns import NetnsLab

NODE, RTR = "10.95.0.1", "10.95.0.2"
NODE2, RTR2 = "10.95.1.1", "10.95.1.2"
ECHO_MS = 50
PROFILE = {"name": "fast", "receive_interval": 300, "transmit_interval": 300, "detect_multiplier": 3}
TARGET_MS = 300.0
SECTION = "## BFD echo"
FRR_CONF = f"""
bfd
 peer {NODE}
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
  echo-mode
  echo transmit-interval {ECHO_MS}
  echo receive-interval {ECHO_MS}
 !
 peer {NODE2}
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 !
!
"""


def drop_forwarded_echo(lab: NetnsLab, ns: str) -> None:
    lab.run(ns, ["nft", "add", "table", "inet", "echobench"])
    lab.run(ns, ["nft", "add", "chain", "inet", "echobench", "f", "{ type filter hook forward priority 0 ; }"])
    lab.run(ns, ["nft", "add", "rule", "inet", "echobench", "f", "udp", "dport", "3785", "drop"])


def trial(lab: NetnsLab, rtr: str, echo: BFDProc, plain: BFDProc) -> float:
    echo.seen("bfd", True, 15.0, since=len(echo.lines) - 1 if echo.lines else 0)
    time.sleep(1.0)
    before = echo.info()["counters"]["echo_in"]
    wait_until(lambda: echo.info()["counters"]["echo_in"] > before + 5, 5.0, "echo packets returning", interval=0.05)
    t0 = time.monotonic()
    drop_forwarded_echo(lab, rtr)
    down = echo.wait_for("bfd", False, 10.0)
    ms = (float(down["t"]) - t0) * 1000
    if down.get("diag") != 2:
        raise RuntimeError(f"down for another reason: {down}")
    time.sleep(0.5)
    if plain.info()["state"] != "UP":
        raise RuntimeError("the control-only session went down too: not a data-plane-only failure")
    lab.run(rtr, ["nft", "delete", "table", "inet", "echobench"], check=False)
    echo.wait_for("bfd", True, 15.0)
    return ms


def main() -> int:
    args = bench_args(__doc__ or "", 15)
    if cannot_run():
        return 2
    lab = NetnsLab(f"bfde{secrets.token_hex(2)}")
    ms: list[float] = []
    second: list[str] = []

    def second_node(node: str, rtr: str) -> None:
        """``node2``, linked to the router's ``eth1``: the control-only session."""
        second.append(lab.netns("node2"))
        lab.veth(second[0], "eth0", rtr, "eth1")
        lab.addr(second[0], "eth0", f"{NODE2}/24")
        lab.addr(rtr, "eth1", f"{RTR2}/24")

    forward = {"net.ipv4.ip_forward": "1"}
    with node_router(
        lab, ("zebra", "bfdd"), [f"{NODE}/24"], [f"{RTR}/24"], config=FRR_CONF,
        node_sysctls=forward, router_sysctls=forward, before_start=second_node,
    ) as (node, rtr, _frr):  # fmt: skip
        node2 = second[0]
        echo_profile = {**PROFILE, "echo_mode": True, "echo_interval": ECHO_MS}
        echo = BFDProc(lab, node, {"peer": RTR, "local": NODE, "profile": echo_profile})
        plain = BFDProc(lab, node2, {"peer": RTR2, "local": NODE2, "profile": {**PROFILE, "name": "plain"}})
        wait_until(lambda: plain.info().get("state") == "UP", 15.0, "control-only session Up", retry=STARTING)
        for i in range(args.trials):
            ms.append(trial(lab, rtr, echo, plain))
            print(f"trial {i + 1:2d}: {ms[-1]:6.1f} ms", flush=True)
    p50, p95, worst = percentile(ms, 50), percentile(ms, 95), max(ms)
    met = "met" if p95 < TARGET_MS else "not met"
    print(f"\necho failure detected, {len(ms)} trials: p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {worst:.0f} ms")
    if args.no_results:
        return 0
    load = os.getloadavg()[0]
    text = f"""{SECTION}

`bench/bfd_echo.py`: two node namespaces each run a BFD session of ironlb with FRR 8.4's bfdd in a router namespace
(300 ms x 3 both): one with `echoMode` (`echoInterval` {ECHO_MS} ms; FRR `echo-mode`, echo receive interval {ECHO_MS} ms,
IPv4 forwarding on so it loops our echo packets back), one with control packets only. Each trial makes the router's
data plane drop what it forwards to UDP 3785 (nftables forward hook) while control packets, which the router
receives itself, keep flowing, and measures from just before the rule until the echo session reports Down (diag 2,
echo function failed). The control-only session stays Up through every trial: without echo, BFD does not see this
failure at all.

Command (root): `.venv/bin/python -m bench.bfd_echo --trials {len(ms)}`
Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {platform.machine()}, kernel {platform.release()},
Python {platform.python_version()}, {os.cpu_count()} CPUs, load average {load:.1f} at the end of the run (other work
was running on the machine: the figures are noisy).

| measurement ({len(ms)} trials) | p50 | p95 | max | min | target |
|---|---|---|---|---|---|
| router stops forwarding until ironlb's echo session is Down | **{p50:.0f} ms** | **{p95:.0f} ms** | {worst:.0f} ms | {min(ms):.0f} ms | under {TARGET_MS:.0f} ms: {met} |

The echo detection time is 3 x {ECHO_MS} ms = {3 * ECHO_MS} ms after the last echo packet that came back; an echo
packet leaves every {ECHO_MS * 0.75:.1f}-{ECHO_MS} ms (jittered), so detection takes {3 * ECHO_MS - ECHO_MS}-{3 * ECHO_MS} ms
after the failure, plus the time to see the Down in the test process.
"""
    write_results(text, SECTION)
    print("bench/RESULTS.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
