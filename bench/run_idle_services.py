"""``ironlb run`` with many Layer 2 Services: each node's idle CPU, and a failover of all a node's IPs (issue 15).

N nodes of ``ironlb run`` on one bridge in network namespaces (``ironlb.lab``), a state directory holding one pool
of ``--services`` addresses (10.96.0.0/16, Layer 2) and that many LoadBalancer Services in one manifest. Once every
node's status file lists its share of the IPs and the union is all of them, each process's CPU time
(``/proc/PID/stat``, main and fast process apart) is read ``--seconds`` apart: the steady state with that many
Services. Then the node announcing the most IPs dies as a machine does (link down, ``kill -9``), and two figures:
on the wire, per IP of the dead node, the time from the kill until the client (``bench/arpmulti.py`` in its
namespace: ARP requests round robin, ``--max-pps`` a second at most, so each IP is asked about every
``n / max_pps`` s; a gratuitous ARP counts too) receives an answer from a survivor, by the kernel's time stamp;
and the time until the survivors' status files, together, list every IP again (written after the decision's
whole plan, so later than the wire). Each survivor's steps (MemberDown, the main process's announcement, the fast
process's apply) are printed from its log, in ms after the kill.

    .venv/bin/python -m bench.run_idle_services [--nodes 3] [--services 10000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from tests.support.cluster_run import cluster_run
from tests.support.waits import wait_until

from bench.membership_wire import children, cpu_seconds
from ironlb.lab.cluster import StandaloneCluster
from ironlb.lab.failover import percentile
from ironlb.lab.lan import build_lan
from ironlb.lab.netns import netns_available

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

POOL = ipaddress.ip_network("10.96.0.0/16")


def manifests(services: int) -> tuple[str, str]:
    """The configuration (one Layer 2 pool) and ``services`` LoadBalancer Services, as two YAML texts."""
    config = f"""\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: bulk
  namespace: metallb-system
spec:
  addresses:
  - {POOL}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: bulk
  namespace: metallb-system
"""
    docs = []
    for i in range(services):
        docs.append(
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i:05d}\n  namespace: default\n"
            f"spec:\n  type: LoadBalancer\n  selector:\n    app: a{i}\n  ports:\n  - port: 80\n    protocol: TCP\n"
        )
    return config, "---\n".join(docs)


def announced(cluster: StandaloneCluster, nodes: Sequence[str]) -> dict[str, set[str]]:
    out = {}
    for node in nodes:
        status = cluster.status(node) or {}
        out[node] = set(status.get("announcing", {}).get("layer2", []))
    return out


STEPS = ("MemberDown", "members alive", "announced in", "decision of", "recomputed")
"""What of a survivor's log shows the take-over's steps."""


def logged_after(text: str, after: float) -> list[tuple[float, str]]:
    """The log lines written after wall time ``after``: (wall time, the line without its time stamp)."""
    out = []
    for line in text.splitlines():
        try:
            stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
        except ValueError:
            continue
        if stamp >= after:
            out.append((stamp, line[24:]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--log-level", default="info", help="the nodes' (debug: each recompute's time)")
    parser.add_argument("--max-pps", type=int, default=5000, help="the client's ARP requests a second, at most")
    args = parser.parse_args(argv)
    if not 1 <= args.services <= POOL.num_addresses - 2:
        parser.error(f"--services must be 1..{POOL.num_addresses - 2}")
    if why := netns_available():
        print(f"run_idle_services: {why}", file=sys.stderr)
        return 2
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    with cluster_run(f"ilbis{os.getpid() % 100000}", tail_nodes=3) as run:
        lan = build_lan(run.lab, nodes=args.nodes)
        run.cluster = cluster = StandaloneCluster(lan, run.workdir, log_level=args.log_level)
        config, services = manifests(args.services)
        cluster.write_manifest("config.yaml", config)
        cluster.write_manifest("services.yaml", services)
        t0 = time.monotonic()
        cluster.start_all()
        nodes = cluster.node_names

        def complete() -> bool:
            shares = announced(cluster, nodes)
            return sum(len(s) for s in shares.values()) == args.services and len(set().union(*shares.values())) == (
                args.services
            )

        wait_until(complete, 900, f"all {args.services} IPs announced, each by one node", interval=1.0)
        print(f"{args.nodes} nodes, {args.services} Services: all announced after {time.monotonic() - t0:.1f} s")
        time.sleep(args.warmup)
        tree = children()
        pids = {n: cluster.procs[n].pid for n in nodes}
        before = {n: (cpu_seconds(p, tree), cpu_seconds(p, {})) for n, p in pids.items()}
        w0 = time.monotonic()
        time.sleep(args.seconds)
        tree = children()
        after = {n: (cpu_seconds(p, tree), cpu_seconds(p, {})) for n, p in pids.items()}
        window = time.monotonic() - w0
        totals, mains = [], []
        for n in nodes:
            totals.append((after[n][0] - before[n][0]) / window * 100)
            mains.append((after[n][1] - before[n][1]) / window * 100)
        fasts = [t - m for t, m in zip(totals, mains, strict=True)]
        print(f"idle over {window:.1f} s, per node: CPU {statistics.mean(totals):.2f} % of a core (max {max(totals):.2f} %)")
        print(f"  main process {statistics.mean(mains):.2f} % (max {max(mains):.2f} %), fast process "
              f"{statistics.mean(fasts):.2f} % (max {max(fasts):.2f} %)")  # fmt: skip
        shares = announced(cluster, nodes)
        victim = max(nodes, key=lambda n: len(shares[n]))
        survivors = [n for n in nodes if n != victim]
        print(f"killing {victim} (announcing {len(shares[victim])} IPs)")
        cmd = [sys.executable, "-m", "bench.arpmulti", "--timeout", "60", "--max-pps", str(args.max_pps)]
        prober = run.lab.popen(lan.client.netns, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
        assert prober.stdin is not None and prober.stdout is not None
        if '"ready"' not in prober.stdout.readline():
            raise RuntimeError("arpmulti did not start")
        victim_macs = {run.lab.mac(lan.node(victim).netns, "eth0")}
        t_kill = cluster.kill(victim)
        wall_kill = time.time() - (time.monotonic() - t_kill)
        listed: list[float] = []

        def status_complete() -> None:  # meanwhile: when the survivors' status files list every IP again
            while time.monotonic() - t_kill < 120 and not listed:
                if len(set().union(*announced(cluster, survivors).values())) == args.services:
                    listed.append((time.monotonic() - t_kill) * 1000)
                time.sleep(0.05)

        watcher = threading.Thread(target=status_complete, daemon=True)
        watcher.start()
        prober.stdin.write("".join(f"{ip}\n" for ip in sorted(shares[victim])))
        prober.stdin.close()
        answers: list[float] = []
        by_kind: dict[str, list[float]] = {"reply": [], "garp": []}
        waited: list[float] = []  # for answers to a request: from that request to the answer
        stats: dict[str, Any] = {}
        wrong = 0
        for line in prober.stdout:
            event = json.loads(line)
            if event.get("ev") == "arp":
                answers.append((event["t"] - t_kill) * 1000)
                by_kind.setdefault(event.get("kind", "reply"), []).append(answers[-1])
                if event.get("kind") == "reply" and event.get("asked"):
                    waited.append((event["t"] - event["asked"]) * 1000)
                wrong += event["mac"] in victim_macs
            elif event.get("ev") == "stats":
                stats = event
            elif event.get("ev") in ("done", "timeout"):
                break
        prober.wait(timeout=10)
        answers.sort()
        print(f"ARP answers from the survivors for the dead node's {len(shares[victim])} IPs: {len(answers)}; "
              f"ms after the kill: p50 {percentile(answers, 50):.0f}, p99 {percentile(answers, 99):.0f}, "
              f"max {answers[-1]:.0f} ({wrong} from the dead node's MAC)")  # fmt: skip
        for kind, times in sorted(by_kind.items()):
            times.sort()
            if times:
                print(f"  first heard as {kind}: {len(times)}, ms after the kill: first {times[0]:.0f}, "
                      f"p50 {percentile(times, 50):.0f}, p99 {percentile(times, 99):.0f}")  # fmt: skip
        if waited:
            waited.sort()
            print(f"  a reply's wait after its request, ms: p50 {percentile(waited, 50):.1f}, "
                  f"p99 {percentile(waited, 99):.1f}")  # fmt: skip
        if stats.get("first_sent") and stats.get("last_sent"):
            span = stats["last_sent"] - stats["first_sent"]
            rate = stats["sent"] / span if span > 0 else 0.0
            print(f"  the client sent {stats['sent']} requests over {span * 1000:.0f} ms ({rate:.0f}/s, busiest "
                  f"second {stats['peak_pps']}; at most {args.max_pps}/s asked), its socket dropped "
                  f"{stats['dropped']} frames and read an answer up to {stats['read_late_max'] * 1000:.0f} ms after its "
                  "arrival (the times above are the kernel's)")  # fmt: skip
        watcher.join(timeout=130)
        for node in survivors:  # what each survivor logged about the death, ms after the kill
            print(f"  {node}:")
            for when, text in logged_after(cluster.log(node), wall_kill - 1.0):
                if any(w in text for w in STEPS):
                    print(f"    {(when - wall_kill) * 1000:+8.0f} ms  {text[:160]}")
        kill_text = time.strftime("%H:%M:%S", time.localtime(wall_kill)) + f",{int(wall_kill * 1000) % 1000:03d}"
        print(f"the kill at {kill_text} (the logs' clock)")
        print("every IP listed by the survivors' status files "
              + (f"{listed[0]:.0f} ms after the kill" if listed else "NOT within 120 s"))  # fmt: skip
    print("load average at end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
