"""Per-Service latency at scale, and the speakers' cost: N Services created at once on a real control plane.

The environment is the speaker end-to-end tests' (``tests/support/speaker_env.py``: etcd + kube-apiserver on loopback,
``ironlb controller``, three nodes running ``ironlb speaker`` in network namespaces, a client on the same LAN), plus
97 more Node objects (100 in all, as a cluster with 97 nodes where no speaker runs). One IPAddressPool with an
L2Advertisement; N Services (each with a 3-endpoint EndpointSlice, its IP pinned with ``metallb.io/loadBalancerIPs``
so the client knows it in advance) are created by 32 concurrent writers. Per Service:

- **creation -> IP**: from just before its POST until a watch on the Services sees ``status.loadBalancer.ingress``;
- **creation -> ARP answer**: until the client (``bench/arpmulti.py``, one ARP request per pending IP every 5 ms,
  5,000 a second at most) gets its first reply; the replying MAC is checked against the node named by the Service's
  ServiceL2Status (the elected node);
- **ServiceL2Status**: when every Service has one with its status written, against the last ARP answer.

Also the speakers' CPU time while the N Services arrive, their CPU % idle afterwards, and their RSS.

    .venv/bin/python -m bench.service_latency [--services 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from tests.support.controlplane import ControlPlane, find_binaries
from tests.support.speaker_env import SpeakerEnv

from bench.membership_wire import children, cpu_seconds
from bench.speaker import concurrently, rss_mb, slice_body
from ironlb.kube.client import ENDPOINT_SLICES, SERVICES, ApiError, KubeClient, TransportError
from ironlb.lab.failover import percentile

REPO = Path(__file__).resolve().parents[1]
POOL = "10.80.0.0/16"
EXTRA_NODES = 97


def ip_of(i: int) -> str:
    return f"10.80.{i // 250}.{i % 250 + 1}"


class ArpReader:
    """``bench/arpmulti.py`` in the client namespace: IPs in on stdin, first replies out."""

    def __init__(self, env: SpeakerEnv) -> None:
        cmd = [sys.executable, "-m", "bench.arpmulti", "--timeout", "300"]
        self.proc = env.lab.popen(env.client_ns, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
        self.answers: dict[str, tuple[float, str]] = {}
        self.lock = threading.Lock()
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.stdin: IO[str] = self.proc.stdin
        if '"ready"' not in self.proc.stdout.readline():
            raise RuntimeError("arpmulti did not start")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            if event.get("ev") == "arp":
                with self.lock:
                    self.answers[event["ip"]] = (event["t"], event["mac"])

    def watch(self, ip: str) -> None:
        self.stdin.write(ip + "\n")
        self.stdin.flush()

    def close(self) -> None:
        self.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


async def watch_ips(client: KubeClient, namespace: str, rv: str, seen: dict[str, float], stop: asyncio.Event) -> None:
    """First time each Service is seen with an ingress IP (the watch restarts from the last resourceVersion)."""
    while not stop.is_set():
        try:
            async for event in client.watch(SERVICES, namespace, resource_version=rv, timeout_seconds=30):
                obj = event.get("object") or {}
                rv = obj.get("metadata", {}).get("resourceVersion", rv)
                name = obj.get("metadata", {}).get("name", "")
                if (obj.get("status", {}).get("loadBalancer", {}).get("ingress")) and name not in seen:
                    seen[name] = time.monotonic()
                if stop.is_set():
                    return
        except (ApiError, TransportError) as err:
            print(f"watch restarted: {err}", file=sys.stderr)
            await asyncio.sleep(0.1)


async def create_all(
    env: SpeakerEnv, n: int, arp: ArpReader, created: dict[str, float], seen: dict[str, float]
) -> None:
    async with KubeClient.from_kubeconfig(str(env.cp.kubeconfig), qps=0) as client:
        first = await client.list(SERVICES, env.app, limit=1)
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_ips(client, env.app, first["metadata"]["resourceVersion"], seen, stop))

        async def create(i: int) -> None:
            name, ip = f"lat-{i}", ip_of(i)
            await client.create(ENDPOINT_SLICES, slice_body(name, i, env.nodes), env.app)
            arp.watch(ip)
            created[name] = time.monotonic()
            await client.create(SERVICES, {
                "metadata": {"name": name, "annotations": {"metallb.io/loadBalancerIPs": ip,
                                                           "metallb.io/address-pool": "lat"}},
                "spec": {"type": "LoadBalancer", "selector": {"app": name}, "allocateLoadBalancerNodePorts": False,
                         "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]},
            }, env.app)  # fmt: skip

        await concurrently(n, create)
        deadline = time.monotonic() + 600
        while len(seen) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        stop.set()
        watcher.cancel()


def l2_statuses(env: SpeakerEnv) -> dict[str, str]:
    """Service name -> the node of its written ServiceL2Status."""
    mlb = f"/apis/metallb.io/v1beta1/namespaces/{env.ns}"
    items = env.cp.get(f"{mlb}/servicel2statuses", labelSelector="metallb.io/service-name")["items"]
    out = {}
    for s in items:
        name = s["metadata"]["labels"]["metallb.io/service-name"]
        if name.startswith("lat-") and (s.get("status") or {}).get("node"):
            out[name] = s["status"]["node"]
    return out


def pct(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    if not ms:
        return "no data"
    return f"p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, max {max(ms):.0f} ms (n={len(ms)})"


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """RSS of ``pid`` and of its children (the speaker's fast process), MB."""
    kids = children().get(pid, [])
    return rss_mb(pid), sum(rss_mb(k) for k in kids)


def speakers_cpu(env: SpeakerEnv) -> dict[str, float]:
    tree = children()
    return {n: cpu_seconds(env.speakers[n].pid, tree) for n in env.nodes}


def speakers_main_cpu(env: SpeakerEnv) -> dict[str, float]:
    """CPU seconds of each speaker's main process alone (without its fast process)."""
    return {n: cpu_seconds(env.speakers[n].pid, {}) for n in env.nodes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=1000)
    args = parser.parse_args()
    if not 1 <= args.services <= 60000:
        parser.error("--services must be 1..60000")
    bin_dir = find_binaries()
    if bin_dir is None:
        print("kube-apiserver/etcd not built: run scripts/build-k8s.sh", file=sys.stderr)
        return 2
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="ironlb-bench-latency-"))
    cp = ControlPlane.start(bin_dir, work / "kube")
    env = SpeakerEnv(cp, work, log_level="info")
    arp: ArpReader | None = None
    try:
        env.start()
        env.wait_speakers_ready()
        for i in range(EXTRA_NODES):
            cp.create(
                "/api/v1/nodes",
                {"metadata": {"name": f"bench-node-{i}", "labels": {"kubernetes.io/hostname": f"bench-node-{i}"}}},
            )
        mlb = f"/apis/metallb.io/v1beta1/namespaces/{env.ns}"
        for plural, kind, name, spec in (
            ("ipaddresspools", "IPAddressPool", "lat", {"addresses": [POOL], "autoAssign": False}),
            ("l2advertisements", "L2Advertisement", "lat-l2", {"ipAddressPools": ["lat"]}),
        ):
            cp.create(
                f"{mlb}/{plural}",
                {"apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": {"name": name}, "spec": spec},
            )
        time.sleep(3)
        idle_rss = {n: tree_rss_mb(env.speakers[n].pid) for n in env.nodes}
        arp = ArpReader(env)
        created: dict[str, float] = {}
        seen: dict[str, float] = {}
        cpu0 = speakers_cpu(env)
        t0 = time.monotonic()
        asyncio.run(create_all(env, args.services, arp, created, seen))
        created_in = max(created.values()) - t0
        deadline = time.monotonic() + 600
        statuses: dict[str, str] = {}
        statuses_done = 0.0
        while time.monotonic() < deadline:
            with arp.lock:
                answered = len(arp.answers)
            if not statuses_done:
                statuses = l2_statuses(env)
                if len(statuses) >= args.services:
                    statuses_done = time.monotonic()
            if answered >= args.services and statuses_done:
                break
            time.sleep(max(0.2, args.services / 5000))
        cpu1 = speakers_cpu(env)
        busy = time.monotonic() - t0
        time.sleep(5)
        cpu2, main2 = speakers_cpu(env), speakers_main_cpu(env)
        time.sleep(10)
        cpu3, main3 = speakers_cpu(env), speakers_main_cpu(env)
        loaded_rss = {n: tree_rss_mb(env.speakers[n].pid) for n in env.nodes}
        with arp.lock:
            answers = dict(arp.answers)
        ip_lat = [seen[n] - created[n] for n in created if n in seen]
        arp_lat = []
        wrong = 0
        mac_node = {mac: node for node, mac in env.mac.items()}
        for name, t_created in created.items():
            ip = ip_of(int(name.split("-")[1]))
            if ip in answers:
                arp_lat.append(answers[ip][0] - t_created)
                if statuses.get(name) and mac_node.get(answers[ip][1]) != statuses[name]:
                    wrong += 1
        last_arp = max((t for t, _ in answers.values()), default=0.0)
        print(
            f"{args.services} Services (+ EndpointSlices) created in {created_in:.1f} s by 32 writers; "
            f"100 Node objects, 3 speakers"
        )
        print(f"creation -> IP (watch): {pct(ip_lat)}")
        print(f"creation -> first ARP answer: {pct(arp_lat)}; answered by a node other than the elected one: {wrong}")
        if statuses_done and last_arp:
            print(
                f"every ServiceL2Status written {statuses_done - t0:.1f} s after the first creation, "
                f"{statuses_done - last_arp:+.1f} s after the last ARP answer"
            )
        else:
            print(f"INCOMPLETE: {len(statuses)} statuses, {len(answers)} ARP answers of {args.services}")
        for n in env.nodes:
            print(
                f"  {n}: CPU {cpu1[n] - cpu0[n]:.1f} s over the {busy:.0f} s of creation+convergence; "
                f"{(cpu2[n] - cpu1[n]) / 5 * 100:.1f} % the 5 s after, {(cpu3[n] - cpu2[n]) / 10 * 100:.1f} % "
                f"idle the next 10 s (main process {(main3[n] - main2[n]) / 10 * 100:.1f} %); RSS {idle_rss[n][0]:.0f} MB idle -> {loaded_rss[n][0]:.0f} MB "
                f"(+ fast process {idle_rss[n][1]:.0f} -> {loaded_rss[n][1]:.0f} MB)"
            )
    finally:
        if arp is not None:
            arp.close()
        env.close()
        cp.stop()
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
