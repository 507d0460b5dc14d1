"""``ironlb speaker`` on a real control plane: announce latency and memory.

The environment is the speaker end-to-end tests' (``tests/support/speaker_env.py``): etcd + kube-apiserver on loopback,
``ironlb controller`` on the host, three nodes running ``ironlb speaker`` in network namespaces (reaching the
apiserver through ``ironlb.lab.unixbridge``), a client and an FRR router on the same LAN.

1. Layer 2: a Service (with its EndpointSlice already there) is POSTed; the client sends an ARP request for its IP
   every 2 ms from before the POST, and the figure is the time to the first reply. The chain measured is the whole
   cluster path: apiserver -> controller allocates and writes the status -> the speakers' watch -> election ->
   ARP reply.
2. BGP: the same for a Service of the BGP pool, until FRR has the /32 installed (polled with vtysh, ~25 ms apart).
3. RSS of each speaker with 1,000 Services (and their EndpointSlices) in a pool advertised over both L2 and BGP.
4. Restart (``--restarts N``, with the 1,000 Services there): the speaker of the node announcing one of them gets
   SIGTERM and is started again; from the new process's start (its ``Popen``): its first log line (imports done),
   "caches synced", its first announcement, its BGP session Established, and its first ARP packet for that IP at the
   client (it takes the IP back once its membership has settled); with the CPU time the process reports on those
   lines, which a loaded machine does not inflate as it does wall time. Log times have ms resolution.

    .venv/bin/python -m bench.speaker [--trials 20] [--services 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.announce import arp_wait_command
from tests.support.controlplane import ControlPlane, find_binaries
from tests.support.speaker_env import SpeakerEnv
from tests.support.waits import VTYSH_NOT_READY, wait_until

from ironlb.kube.client import ENDPOINT_SLICES, SERVICES, KubeClient
from ironlb.lab.failover import percentile

REPO = Path(__file__).resolve().parents[1]

BULK_POOL = "10.78.0.0/20"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def svc_body(name: str, ip: str, pool: str | None = None) -> dict[str, object]:
    annotations = {"metallb.io/loadBalancerIPs": ip}
    if pool:
        annotations["metallb.io/address-pool"] = pool
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "allocateLoadBalancerNodePorts": False,
                 "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]},
    }  # fmt: skip


def l2_trial(env: SpeakerEnv, i: int, ip: str) -> float | None:
    name = f"lat-l2-{i}"
    env.set_endpoints(name, env.nodes)
    cmd = arp_wait_command(ip, interval=0.002, timeout=5)
    proc = env.lab.popen(env.client_ns, cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        if '"ready"' not in proc.stdout.readline():
            return None
        t0 = time.monotonic()
        env.cp.create(f"/api/v1/namespaces/{env.app}/services", svc_body(name, ip))
        event = json.loads(proc.stdout.readline() or "{}")
        proc.wait(timeout=10)
        return (event["t"] - t0) if event.get("ev") == "arp" else None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        env.delete_service(name)


def bgp_trial(env: SpeakerEnv, i: int, ip: str) -> float | None:
    name = f"lat-bgp-{i}"
    env.set_endpoints(name, env.nodes)
    t0 = time.monotonic()
    env.cp.create(f"/api/v1/namespaces/{env.app}/services", svc_body(name, ip, "bgp"))
    try:
        deadline = t0 + 10
        while time.monotonic() < deadline:
            if f"{ip}/32" in env.router_routes():
                return time.monotonic() - t0
        return None
    finally:
        env.delete_service(name)
        wait_until(lambda: f"{ip}/32" not in env.router_routes(), 10, f"{ip} withdrawn", retry=VTYSH_NOT_READY)


def slice_body(service: str, i: int, nodes: Sequence[str]) -> dict[str, Any]:
    """The EndpointSlice of the ``i``-th bulk Service: one ready endpoint on each of ``nodes``."""
    return {
        "metadata": {"name": f"{service}-eps", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [f"10.244.{k}.{i % 250 + 1}"], "nodeName": node,
                       "conditions": {"ready": True}} for k, node in enumerate(nodes)],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }  # fmt: skip


async def concurrently(n: int, job: Callable[[int], Awaitable[None]], workers: int = 32) -> None:
    """``job(i)`` for every ``i`` in ``range(n)``, ``workers`` at a time (creates against the apiserver)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            await job(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(workers)))


async def create_bulk(env: SpeakerEnv, n: int) -> None:
    async with KubeClient.from_kubeconfig(str(env.cp.kubeconfig), qps=0) as client:

        async def create(i: int) -> None:
            name = f"bulk-{i}"
            await client.create(ENDPOINT_SLICES, slice_body(name, i, env.nodes), env.app)
            body = svc_body(name, "", "bulk")
            body["metadata"] = {"name": name, "annotations": {"metallb.io/address-pool": "bulk"}}
            await client.create(SERVICES, body, env.app)

        await concurrently(n, create)


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_CPU = re.compile(r"([\d.]+) s of CPU")
MARKS = ("starting (", "caches synced", "first announcement", "established")


def log_marks(text: str, needles: Sequence[str]) -> dict[str, tuple[float, float | None]]:
    """For each needle, the wall time of the first log line containing it and the CPU seconds it reports (if any)."""
    out: dict[str, tuple[float, float | None]] = {}
    for line in text.splitlines():
        m = _LOG_TIME.match(line)
        if m is None:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for needle in needles:
            if needle in line and needle not in out:
                cpu = _CPU.search(line)
                out[needle] = (t, float(cpu.group(1)) if cpu else None)
    return out


def restart_trials(env: SpeakerEnv, trials: int) -> None:
    """Restart the speaker announcing a bulk Service's IP; where its start-up time goes (ms from its Popen)."""
    status = next(s for s in env.statuses("l2") if s["metadata"]["labels"]["metallb.io/service-name"] == "bulk-0")
    node = status["metadata"]["labels"]["metallb.io/node"]
    ip = env.ingress("bulk-0")[0]
    rows: list[dict[str, float]] = []
    print(f"restart trials: {node}'s speaker (it announces {ip}); ms from the new process's start (CPU ms it had used)")
    for i in range(trials):
        with env.sniff_arp(ip) as sniffer:
            env.stop_speaker(node)
            time.sleep(2.0)  # the others have taken over and settled
            mark = len(env.speaker_log(node))
            t0_wall, t0 = time.time(), time.monotonic()
            env.start_speaker(node)
            back = sniffer.wait_mac_of(node, t0, timeout=120)

        def up(since: int = mark) -> bool:
            return "established" in env.speaker_log(node)[since:]

        wait_until(up, 60, f"{node}'s BGP session")
        row: dict[str, float] = {}
        for key, (t, cpu) in log_marks(env.speaker_log(node)[mark:], MARKS).items():
            row[key] = (t - t0_wall) * 1000
            if cpu is not None:
                row[f"{key} CPU"] = cpu * 1000
        if back is not None:
            row["ARP for its IP"] = (back - t0) * 1000
        rows.append(row)
        print(f"  {i + 1}: " + ", ".join(f"{k} {v:.0f}" for k, v in row.items()), flush=True)
        time.sleep(2.0)
    for key in sorted({k for r in rows for k in r}):
        values = [r[key] for r in rows if key in r]
        print(f"  {key}: p50 {percentile(values, 50):.0f} ms, min {min(values):.0f}, max {max(values):.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--restarts", type=int, default=0, help="speaker restart trials with the Services there")
    args = parser.parse_args()
    bin_dir = find_binaries()
    if bin_dir is None:
        print("kube-apiserver/etcd not built: run scripts/build-k8s.sh", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ironlb-bench-speaker-"))
    cp = ControlPlane.start(bin_dir, work / "kube")
    env = SpeakerEnv(cp, work, log_level="info")
    try:
        env.start()
        env.wait_speakers_ready()
        idle = {n: rss_mb(env.speakers[n].pid) for n in env.nodes}
        l2: list[float] = []
        bgp: list[float] = []
        for i in range(args.trials):
            ip = f"192.168.1.{241 + i % 9}"
            r = l2_trial(env, i, ip)
            if r is not None:
                l2.append(r)
            r = bgp_trial(env, i, f"10.77.0.{10 + i}")
            if r is not None:
                bgp.append(r)
        mlb = f"/apis/metallb.io/v1beta1/namespaces/{env.ns}"
        for plural, kind, name, spec in (
            ("ipaddresspools", "IPAddressPool", "bulk", {"addresses": [BULK_POOL], "autoAssign": False}),
            ("l2advertisements", "L2Advertisement", "bulk-l2", {"ipAddressPools": ["bulk"]}),
            ("bgpadvertisements", "BGPAdvertisement", "bulk-bgp", {"ipAddressPools": ["bulk"]}),
        ):
            cp.create(
                f"{mlb}/{plural}",
                {"apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": {"name": name}, "spec": spec},
            )
        t0 = time.monotonic()
        asyncio.run(create_bulk(env, args.services))
        created = time.monotonic() - t0

        def l2_statuses() -> int:
            items = cp.get(f"{mlb}/servicel2statuses", labelSelector="metallb.io/service-name")["items"]
            return sum(1 for s in items if s["metadata"]["labels"]["metallb.io/service-name"].startswith("bulk-"))

        def bulk_routes() -> int:
            try:
                return sum(1 for p in env.router_routes() if p.startswith("10.78."))
            except VTYSH_NOT_READY:
                return 0  # vtysh not answering for a moment (bgpd busy with 3,000 paths)

        # Both polled in one loop, so each time is its own: the routes at FRR are the announcements, and the
        # status figure that matters is how far the ServiceL2Status objects trail them.
        statuses_done = routes_done = 0.0
        deadline = time.monotonic() + 1800
        while not (statuses_done and routes_done):
            if time.monotonic() > deadline:
                raise TimeoutError(f"statuses done: {statuses_done}, routes done: {routes_done}")
            if not statuses_done and l2_statuses() >= args.services:
                statuses_done = time.monotonic() - t0
            if not routes_done and bulk_routes() >= args.services:
                routes_done = time.monotonic() - t0
            time.sleep(0.2)
        time.sleep(5)
        loaded = {n: rss_mb(env.speakers[n].pid) for n in env.nodes}
        print(f"trials: {len(l2)} L2, {len(bgp)} BGP of {args.trials}")
        for label, values in (("Service created -> ARP answer", l2), ("Service created -> route at FRR", bgp)):
            if values:
                ms = [v * 1000 for v in values]
                print(
                    f"{label}: p50 {percentile(ms, 50):.0f} ms, p95 {percentile(ms, 95):.0f} ms, "
                    f"min {min(ms):.0f}, max {max(ms):.0f}, mean {statistics.mean(ms):.0f}"
                )
        print(
            f"{args.services} Services + EndpointSlices created in {created:.1f} s; every ServiceL2Status after "
            f"{statuses_done:.1f} s, every route at FRR after {routes_done:.1f} s (statuses trail the routes by "
            f"{statuses_done - routes_done:+.1f} s)"
        )
        print("speaker RSS idle: " + ", ".join(f"{n}: {v:.0f} MB" for n, v in idle.items()))
        print(f"speaker RSS with {args.services} Services: " + ", ".join(f"{n}: {v:.0f} MB" for n, v in loaded.items()))
        if args.restarts:
            restart_trials(env, args.restarts)
    finally:
        env.close()
        cp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
