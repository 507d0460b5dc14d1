"""BGP benchmarks against FRR 8.4 in network namespaces (root).

1. ``prefixes``: 10,000 /32s set at once on one :class:`BGPSpeaker` session; time until FRR's RIB holds all of
   them (``pfxRcd`` in ``show bgp summary``), measured from the moment the routes are handed to the speaker.
2. ``burst``: ``ironlb run`` on a node; 1,000 Services created in a burst, then all deleted; time until FRR has
   them / has none, and FRR's own count of connections established/dropped (must stay 1/0: no session reset).
3. ``rss``: one speaker with 3 peers (3 FRR neighbors) and 10,000 prefixes each: the speaker's VmRSS.

Run from the repository root: ``python -m bench.bgp`` (all), or ``--only prefixes|burst|rss``; ``--append-results`` adds the figures to
bench/RESULTS.md under ``## BGP``. The speaker runs in the node namespace as a child (``--worker``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

NODE_ADDRS = ["10.98.0.1", "10.98.0.3", "10.98.0.4"]
RTR_ADDRS = ["10.98.0.2", "10.98.0.5", "10.98.0.6"]


# --------------------------------------------------------------------------- worker (inside the node namespace)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def worker(peers: int, prefixes: int) -> None:
    from ironlb.bgp.attributes import Attributes
    from ironlb.bgp.metrics import BGPMetrics
    from ironlb.bgp.speaker import BGPSpeaker
    from ironlb.config.types import Peer
    from ironlb.runtime import tune_gc

    tune_gc()
    speaker = BGPSpeaker("bench-node", metrics=BGPMetrics(None))
    cfg = [
        Peer(
            f"r{i}", my_asn=64512, peer_asn=64513, address=RTR_ADDRS[i], source_address=NODE_ADDRS[i], connect_time=1.0
        )
        for i in range(peers)
    ]
    attrs = Attributes(None, (64512 << 16 | 100,))
    table: dict[IPv4Network, Attributes] = {}
    base = int(ip_network("10.200.0.0/16").network_address)
    for i in range(prefixes):
        table[IPv4Network((base + i, 32))] = attrs
    await speaker.update(cfg, {})
    for s in speaker.sessions.values():
        await s.wait_established(30)
    print(json.dumps({"established": True, "rss_mb": round(rss_mb(), 1)}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = line.decode().strip()
        if cmd == "go":
            t0 = time.monotonic()
            await speaker.update(cfg, {p.name: table for p in cfg})
            print(json.dumps({"set_ms": round((time.monotonic() - t0) * 1000, 1)}), flush=True)
        elif cmd == "rss":
            print(json.dumps({"rss_mb": round(rss_mb(), 1), "status": len(speaker.status())}), flush=True)
        elif cmd == "quit":
            break
    await speaker.close(graceful_restart=False)


# --------------------------------------------------------------------------- orchestration


def setup(lab: Any) -> tuple[str, str, Any]:
    from ironlb.lab.frr import FRRInstance as FRR

    node = lab.netns("bnode")
    rtr = lab.netns("brtr")
    lab.veth(node, "eth0", rtr, "eth0")
    lab.addr(node, "eth0", *(f"{a}/24" for a in NODE_ADDRS))
    lab.addr(rtr, "eth0", *(f"{a}/24" for a in RTR_ADDRS))
    frr = FRR(lab, rtr)
    frr.start()
    lines = ["router bgp 64513", " bgp router-id 10.98.0.2", " no bgp ebgp-requires-policy"]
    lines += [" no bgp default ipv4-unicast"]
    for node_addr, rtr_addr in zip(NODE_ADDRS, RTR_ADDRS, strict=True):
        lines += [f" neighbor {node_addr} remote-as 64512", f" neighbor {node_addr} update-source {rtr_addr}"]
        lines += [f" neighbor {node_addr} timers connect 1"]
    lines += [" address-family ipv4 unicast", *(f"  neighbor {a} activate" for a in NODE_ADDRS)]
    lines += [" exit-address-family"]
    frr.configure("\n".join(lines) + "\n")
    return node, rtr, frr


def summary(frr: Any) -> dict[str, Any]:
    peers: dict[str, Any] = frr.json("show bgp ipv4 unicast summary json").get("peers", {})
    return peers


def received(frr: Any, addr: str) -> int:
    return int(summary(frr).get(addr, {}).get("pfxRcd", 0))


def neighbor(frr: Any, addr: str) -> dict[str, Any]:
    data: dict[str, Any] = frr.json(f"show bgp neighbor {addr} json").get(addr, {})
    return data


def wait(pred: Any, timeout: float, interval: float = 0.01) -> float:
    """Seconds until ``pred`` holds (vtysh failing while FRR starts counts as not yet)."""
    from tests.support.waits import STARTING, wait_until

    t0 = time.monotonic()
    wait_until(pred, timeout, "the router's table", retry=STARTING, interval=interval)
    return time.monotonic() - t0


def start_worker(lab: Any, ns: str, peers: int, prefixes: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(peers), str(prefixes)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = lab.popen(ns, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    return proc


def ask(proc: subprocess.Popen[str], cmd: str | None = None) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    if cmd:
        proc.stdin.write(cmd + "\n")
        proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("worker exited")
    data: dict[str, Any] = json.loads(line)
    return data


def quit_worker(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    proc.wait(timeout=10)


def bench_prefixes(lab: Any, node: str, frr: Any, n: int, runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        proc = start_worker(lab, node, 1, n)
        ask(proc)  # established
        t0 = time.monotonic()
        ask(proc, "go")
        wait(lambda: received(frr, NODE_ADDRS[0]) >= n, 30)
        times.append(time.monotonic() - t0)
        quit_worker(proc)
        wait(lambda: received(frr, NODE_ADDRS[0]) == 0, 30, 0.05)
    return {
        "prefixes": n,
        "runs": runs,
        "best_s": round(min(times), 3),
        "median_s": round(sorted(times)[len(times) // 2], 3),
    }


def bench_rss(lab: Any, node: str, frr: Any, n: int) -> dict[str, Any]:
    proc = start_worker(lab, node, 3, n)
    before = ask(proc)["rss_mb"]
    t0 = time.monotonic()
    ask(proc, "go")
    wait(lambda: all(received(frr, a) >= n for a in NODE_ADDRS), 60, 0.05)
    took = time.monotonic() - t0
    after = ask(proc, "rss")
    quit_worker(proc)
    return {
        "peers": 3,
        "prefixes": n,
        "rss_before_mb": before,
        "rss_mb": after["rss_mb"],
        "all_in_rib_s": round(took, 3),
    }


SERVICE_CONFIG = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp, namespace: metallb-system}
spec: {addresses: ["10.60.0.0/20"]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: hosts, namespace: metallb-system}
spec: {ipAddressPools: [bgp], communities: ["64512:100"]}
"""


def bench_burst(lab: Any, node: str, frr: Any, n: int, tmp: Path) -> dict[str, Any]:
    from tests.support.bgp_interop import IronNode, peer_yaml, service_yaml

    iron = IronNode(lab, node, "bench-node", tmp)
    cfg = SERVICE_CONFIG + "---\n"
    cfg += peer_yaml("r", 64512, 64513, RTR_ADDRS[0], sourceAddress=NODE_ADDRS[0], connectTime="1s")
    iron.write("config.yaml", cfg)
    iron.start()
    addr = NODE_ADDRS[0]
    wait(lambda: neighbor(frr, addr).get("bgpState") == "Established", 30, 0.05)
    before = neighbor(frr, addr)
    est0, drop0 = before.get("connectionsEstablished", 0), before.get("connectionsDropped", 0)
    t0 = time.monotonic()
    for i in range(n):
        iron.write(f"svc-{i:04d}.yaml", service_yaml(f"svc-{i:04d}", f"10.60.{i // 256}.{i % 256}"))
    written = time.monotonic() - t0
    create_s = wait(lambda: received(frr, addr) >= n, 120, 0.05) + written
    rss = _rss_of(iron.proc.pid if iron.proc else 0)
    t1 = time.monotonic()
    for i in range(n):
        iron.remove(f"svc-{i:04d}.yaml")
    t1 = time.monotonic() - t1  # time spent deleting files, added to the wait below
    delete_s = wait(lambda: received(frr, addr) == 0, 120, 0.05) + t1
    after = neighbor(frr, addr)
    iron.stop()
    return {
        "services": n,
        "create_until_in_rib_s": round(create_s, 2),
        "delete_until_gone_s": round(delete_s, 2),
        "connections_established": after.get("connectionsEstablished", 0) - est0,
        "connections_dropped": after.get("connectionsDropped", 0) - drop0,
        "session_state": after.get("bgpState"),
        "ironlb_run_rss_mb": rss,
    }


def _rss_of(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def append_results(results: dict[str, Any]) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    p, b, r = results.get("prefixes"), results.get("burst"), results.get("rss")
    lines = [
        "",
        "## BGP",
        "",
        f"`python -m bench.bgp` ({time.strftime('%Y-%m-%d')}, FRR 8.4 in network namespaces).",
        "",
    ]
    lines += ["| measurement | result | target |", "|---|---|---|"]
    if p:
        lines.append(
            f"| {p['prefixes']:,} prefixes, one session, until all in FRR's RIB | best {p['best_s']} s, "
            f"median {p['median_s']} s of {p['runs']} | < 2 s |"
        )
    if b:
        lines.append(
            f"| {b['services']:,} Services created in a burst (`ironlb run`) until in FRR's RIB | "
            f"{b['create_until_in_rib_s']} s | |"
        )
        lines.append(f"| the same deleted, until all withdrawn | {b['delete_until_gone_s']} s | |")
        lines.append(
            f"| session resets during the burst (FRR: connections established / dropped) | "
            f"{b['connections_established']} / {b['connections_dropped']} | 0 / 0 |"
        )
        lines.append(f"| `ironlb run` RSS with {b['services']:,} Services | {b['ironlb_run_rss_mb']} MB | |")
    if r:
        lines.append(
            f"| speaker RSS, {r['prefixes']:,} prefixes x {r['peers']} peers (BGPSpeaker process) | "
            f"{r['rss_mb']} MB (idle {r['rss_before_mb']} MB); all in 3 RIBs in {r['all_in_rib_s']} s | < 80 MB |"
        )
    if "## BGP" in text:
        # Replace only our own section, keeping everyone else's.
        head, _, rest = text.partition("\n## BGP")
        nxt = rest.find("\n## ")
        tail = rest[nxt:] if nxt >= 0 else "\n"
        text = head.rstrip("\n") + "\n" + "\n".join(lines) + "\n" + tail.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--worker", nargs=2, type=int, metavar=("PEERS", "PREFIXES"), help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=("prefixes", "burst", "rss"))
    ap.add_argument("--prefixes", type=int, default=10_000)
    ap.add_argument("--services", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--append-results", action="store_true")
    args = ap.parse_args()
    if args.worker:
        asyncio.run(worker(*args.worker))
        return
    import tempfile

    from ironlb.lab.netns import NetnsLab, netns_available

    if reason := netns_available():
        sys.exit(f"bench.bgp: {reason}")
    lab = NetnsLab(prefix=f"bb{os.getpid() % 10000}")
    frr = None
    results: dict[str, Any] = {}
    try:
        node, _rtr, frr = setup(lab)
        with tempfile.TemporaryDirectory(prefix="ironlb-bgp-bench-") as tmp:
            if args.only in (None, "prefixes"):
                results["prefixes"] = bench_prefixes(lab, node, frr, args.prefixes, args.runs)
                print(json.dumps({"prefixes": results["prefixes"]}), flush=True)
            if args.only in (None, "burst"):
                results["burst"] = bench_burst(lab, node, frr, args.services, Path(tmp))
                print(json.dumps({"burst": results["burst"]}), flush=True)
            if args.only in (None, "rss"):
                results["rss"] = bench_rss(lab, node, frr, args.prefixes)
                print(json.dumps({"rss": results["rss"]}), flush=True)
    finally:
        lab.cleanup()
        if frr is not None:
            frr.cleanup()
    if args.append_results:
        append_results(results)


if __name__ == "__main__":
    main()
