"""Speaker restarts against FRR 8.4: how long the router goes without the node's next hop (issue 16).

One node runs ``ironlb run`` with ``--services`` Services (pinned IPs in 10.50.0.0/22, one BGPAdvertisement) and a
BGPPeer to FRR at the LAN's ``.100`` (hold time 3 s, FRR ``timers 1 3``, ``timers connect 1``). FRR's kernel FIB
(what zebra installs, so what traffic uses) is watched with ``ip -ts monitor route`` in its namespace, and the
first Service's /32 is tracked. Each scenario runs ``--trials`` times with ``enableGracefulRestart`` on and off:

- ``term``: SIGTERM, then the process is started again at once (a rolling restart);
- ``kill``: SIGKILL, then started again at once (an OOM kill; the kernel closes the TCP session);
- ``stop``: SIGSTOP for ``--freeze`` seconds (past the hold time: FRR drops the session), then SIGCONT.

Reported per trial: how long the tracked /32 had no route at FRR (from the signal until 2 s after the session is
back), and the restart's own figures: process start -> session Established (ironlb's log line) and, when the
routes had gone, start (or SIGCONT) -> the tracked route back in FRR's FIB.

Run from the repository root as root: ``python -m bench.restarts [--trials 5] [--services 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from tests.support.bgp_interop import ROUTER4, BgpLan, IronNode, doc, frr_bgp_conf, frr_lan, peer_yaml
from tests.support.cluster_run import unwind_on_sigterm

from ironlb.lab.failover import percentile
from ironlb.lab.frr import FRRInstance, frr_missing
from ironlb.lab.netns import NetnsLab, netns_available
from ironlb.lab.waits import WaitTimeout, wait_until

TRACKED = "10.50.0.1"
SETTLE_AFTER = 2.0  # seconds watched after the session is back (a late withdrawal would show there)
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\]\s*(Deleted\s+)?(\S+)\s+(.*)$")
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


class RouteWatch:
    """``ip -ts monitor route`` in the router's namespace: every add/delete of ``prefix`` via ``nexthop``."""

    def __init__(self, lab: NetnsLab, ns: str, prefix: str, nexthop: str) -> None:
        self.prefix, self.nexthop = prefix, nexthop
        self.events: list[tuple[float, bool]] = []  # (wall time, present after the event)
        self.add_times: list[float] = []  # every add via the node, all prefixes
        self._lock = threading.Lock()
        self._proc = lab.popen(ns, ["ip", "-ts", "monitor", "route"], stdout=subprocess.PIPE, bufsize=1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            m = _STAMP.match(line.strip())
            if m is None or f"via {self.nexthop} " not in m.group(4) + " ":
                continue
            t = datetime.fromisoformat(m.group(1)).timestamp()
            with self._lock:
                if not m.group(2):
                    self.add_times.append(t)
                if m.group(3) in (self.prefix, f"{self.prefix}/32"):
                    self.events.append((t, not m.group(2)))

    def adds_since(self, since: float) -> list[float]:
        with self._lock:
            return [t for t in self.add_times if t >= since]

    def snapshot(self) -> list[tuple[float, bool]]:
        with self._lock:
            return list(self.events)

    def absent(self, start: float, end: float, present_at_start: bool = True) -> tuple[float, float | None]:
        """(total seconds without the route in [start, end], when it came back last or None)."""
        present, since, total, back = present_at_start, start, 0.0, None
        for t, now_present in self.snapshot():
            if t < start or t > end:
                continue
            if present and not now_present:
                present, since = False, t
            elif not present and now_present:
                total += t - since
                present, back = True, t
        if not present:
            total += end - since
        return total, back

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=5)

    def __enter__(self) -> RouteWatch:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


@dataclass
class Trial:
    scenario: str
    gr: bool
    absent_ms: float | None = None  # the tracked /32 had no route at FRR this long
    established_ms: float | None = None  # process start (or SIGCONT) -> ironlb logs Established
    route_back_ms: float | None = None  # process start (or SIGCONT) -> the route back, when it had gone
    error: str | None = None


def log_times(node: IronNode, needle: str, after: float) -> list[float]:
    """Wall times of ironlb's log lines containing ``needle`` logged after ``after``."""
    out = []
    for line in node.log_file.read_text(errors="replace").splitlines():
        m = _LOG_TIME.match(line)
        if m and needle in line:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if t >= after - 0.001:
                out.append(t)
    return out


def established_at_frr(frr: FRRInstance, addr: str) -> bool:
    try:
        n = frr.json(f"show bgp neighbor {addr} json").get(addr, {})
    except (subprocess.CalledProcessError, ValueError):
        return False
    return bool(n.get("bgpState") == "Established")


def config(services: int, gr: bool) -> tuple[str, str]:
    base = doc(
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: bgp, namespace: metallb-system}
        spec: {addresses: ["10.50.0.0/22"]}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: hosts, namespace: metallb-system}
        spec: {ipAddressPools: [bgp]}
        """
    )
    peer = peer_yaml("r", 64513, 64512, ROUTER4, holdTime="3s", connectTime="1s", enableGracefulRestart=gr)
    svcs = []
    for i in range(services):
        meta = {"name": f"s{i}", "namespace": "default"}
        spec = {
            "type": "LoadBalancer",
            "ports": [{"port": 80}],
            "loadBalancerIP": f"10.50.{(i + 1) // 256}.{(i + 1) % 256}",
        }
        svcs.append(json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}))
    return base + "---\n" + peer, "\n---\n".join(svcs) + "\n"


def frr_conf(lan: BgpLan) -> str:
    """FRR with graceful restart, hold time 3 s and connect retry 1 s to the node."""
    neighbor = ["timers 1 3", "timers connect 1", "graceful-restart"]
    return frr_bgp_conf(64512, [(lan.node_ip("node1"), 64513, neighbor)], options=["bgp graceful-restart"])


def run_trial(
    node: IronNode, frr: FRRInstance, watch: RouteWatch, node_ip: str, scenario: str, gr: bool, freeze: float
) -> Trial:
    r = Trial(scenario, gr)
    assert node.proc is not None
    t_sig = time.time()
    if scenario == "stop":
        node.proc.send_signal(signal.SIGSTOP)
        time.sleep(freeze)
        t_from = time.time()
        node.proc.send_signal(signal.SIGCONT)
    else:
        node.stop(signal.SIGTERM if scenario == "term" else signal.SIGKILL, timeout=30)
        t_from = time.time()
        node.start()
    try:
        wait_until(lambda: bool(log_times(node, "established", t_from)), 30, "the session established", interval=0.02)
        wait_until(lambda: established_at_frr(frr, node_ip), 30, "FRR sees the session", interval=0.05)
    except WaitTimeout as err:
        r.error = str(err)
        return r
    r.established_ms = (log_times(node, "established", t_from)[0] - t_from) * 1000
    time.sleep(SETTLE_AFTER)
    absent, back = watch.absent(t_sig, time.time())
    r.absent_ms = absent * 1000
    if back is not None:
        r.route_back_ms = (back - t_from) * 1000
    return r


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {percentile(values, 50):7.1f}  max {max(values):7.1f}  min {min(values):7.1f}  (n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=5, help="trials per scenario and GR setting")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--freeze", type=float, default=4.0, help="SIGSTOP duration, s (past the 3 s hold time)")
    parser.add_argument("--scenarios", default="term,kill,stop")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    reason = netns_available() or frr_missing()
    if reason:
        print(f"restarts: {reason}", file=sys.stderr)
        return 2

    unwind_on_sigterm()
    prefix = f"ilbrst{secrets.token_hex(2)}"
    lab = NetnsLab(prefix)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    started = datetime.now(UTC)
    print(
        f"ironlb restart benchmark, {started:%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"kernel {platform.release()}, Python {platform.python_version()}; {args.services} Services"
    )
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()), flush=True)
    trials: list[Trial] = []
    cold: list[dict[str, object]] = []
    with (
        frr_lan(lab, tmp, nodes=1, config=frr_conf) as (lan, frr),
        RouteWatch(lab, lan.router_ns, TRACKED, lan.node_ip("node1")) as watch,
    ):
        node = lan.nodes["node1"]
        node_ip = lan.node_ip("node1")
        for gr in (False, True):  # GR off first: its SIGTERM withdraws, so the GR-on phase starts cold too
            cfg, svcs = config(args.services, gr)
            node.write("config.yaml", cfg)
            node.write("services.yaml", svcs)
            if node.proc is not None:
                node.stop(signal.SIGTERM, timeout=30)
            wait_until(lambda: not frr.json("show ip route bgp json"), 30, "no route left at FRR", interval=0.1)
            t0 = time.time()
            node.start()  # cold: FRR has no route from the node

            def all_routes(since: float = t0, w: RouteWatch = watch) -> float | None:
                adds = w.adds_since(since)
                return adds[args.services - 1] if len(adds) >= args.services else None

            t_all = wait_until(all_routes, 120, f"{args.services} routes at FRR", interval=0.05)
            est = log_times(node, "established", t0)
            cold.append(
                {"gr": gr, "established_ms": (est[0] - t0) * 1000 if est else None,
                 "first_route_ms": (watch.adds_since(t0)[0] - t0) * 1000, "all_routes_ms": (t_all - t0) * 1000}
            )  # fmt: skip
            print(f"  GR {'on ' if gr else 'off'} cold start: {cold[-1]}", flush=True)
            time.sleep(1.0)
            for scenario in args.scenarios.split(","):
                for i in range(1, args.trials + 1):
                    r = run_trial(node, frr, watch, node_ip, scenario, gr, args.freeze)
                    trials.append(r)

                    def ms(v: float | None) -> str:
                        return f"{v:7.1f}" if v is not None else "      -"

                    print(f"  GR {'on ' if gr else 'off'} {scenario:<4} {i:2d}: no route {ms(r.absent_ms)} ms"
                          f"  established {ms(r.established_ms)}  route back {ms(r.route_back_ms)}"
                          + (f"  ERROR {r.error}" if r.error else ""), flush=True)  # fmt: skip
                    if r.error:
                        break
                    time.sleep(1.0)
    print("load average at end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print("\nsummary (ms; established and route back from the process start, or SIGCONT for stop)")
    for c in cold:
        print(f"  cold start, GR {'on ' if c['gr'] else 'off'}: {c}")
    for gr in (True, False):
        for scenario in args.scenarios.split(","):
            rs = [t for t in trials if t.gr == gr and t.scenario == scenario and t.error is None]
            print(f"  GR {'on ' if gr else 'off'} {scenario:<4} no route: {stats([t.absent_ms or 0.0 for t in rs])}")
            print(f"  {'':11}established: {stats([t.established_ms for t in rs if t.established_ms is not None])}")
            back = [t.route_back_ms for t in rs if t.route_back_ms is not None]
            if back:
                print(f"  {'':11}route back: {stats(back)}")
    if args.json:
        doc_ = {"date": started.isoformat(), "cold": cold, "trials": [asdict(t) for t in trials]}
        args.json.write_text(json.dumps(doc_, indent=2))
    return 1 if any(t.error for t in trials) else 0


if __name__ == "__main__":
    sys.exit(main())
