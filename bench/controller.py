"""``ironlb controller`` against a real control plane (etcd + kube-apiserver from scripts/build-k8s.sh).

1. 1,000 LoadBalancer Services created at once (32 concurrent creates): time until every one has an IP, and the
   API requests the controller sent (its ``ironlb_k8s_client_requests_total``), with the default client-side limit
   of 50 requests/s (burst 100) and without one.
2. 10,000 Services: the controller's RSS once all have IPs (target under 150 MB), how long until every one of
   them has its ``IPAllocated`` Event in the API (none may be lost to the burst; events are written at 50/s), and
   how long a restarted controller takes to re-claim all of them (/readyz).

    .venv/bin/python -m bench.controller [--services 1000] [--total 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.controlplane import ControlPlane, find_binaries, free_port
from tests.support.waits import NOT_LISTENING, wait_until, wait_until_async

from ironlb.kube.client import EVENTS, IP_ADDRESS_POOLS, NAMESPACES, SERVICES, KubeClient

REPO = Path(__file__).resolve().parents[1]

NS = "metallb-system"
APP_NS = "bench"
STARTED: list[Controller] = []  # stopped in main's finally, whatever fails


class Controller:
    def __init__(self, kubeconfig: Path, log: Path, *args: str) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ironlb", "controller", "--kubeconfig", str(kubeconfig), "--namespace", NS,
                 "--port", str(self.port), "--health-probe-port", "0", "--metrics-host", "127.0.0.1",
                 "--log-level", "info", *args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )
        self.started = time.monotonic()
        STARTED.append(self)

    def get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 600) -> float:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("controller exited")
            return self.get("/readyz")[0] == 200

        wait_until(ready, timeout, "controller /readyz", retry=NOT_LISTENING)
        return time.monotonic() - self.started

    def requests(self) -> dict[str, float]:
        out = {}
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith("ironlb_k8s_client_requests_total{"):
                verb = line.split('verb="', 1)[1].split('"', 1)[0]
                out[verb] = float(line.rsplit(" ", 1)[1])
        return out

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def service(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": APP_NS},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}],
                     "allocateLoadBalancerNodePorts": False}}  # 10,000 would not fit the NodePort range


async def create_services(client: KubeClient, names: list[str], concurrency: int = 32) -> None:
    it = iter(names)

    async def worker() -> None:
        for name in it:
            await client.create(SERVICES, service(name), APP_NS)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def count_with_ip(client: KubeClient) -> tuple[int, int]:
    items, _ = await client.list_all(SERVICES, APP_NS, page_size=2000)
    with_ip = sum(1 for s in items if (s.get("status") or {}).get("loadBalancer", {}).get("ingress"))
    return with_ip, len(items)


async def wait_all(client: KubeClient, n: int, timeout: float = 1200) -> None:
    got = 0

    async def all_have_ips() -> bool:
        nonlocal got
        got, _ = await count_with_ip(client)
        return got >= n

    await wait_until_async(all_have_ips, timeout, lambda: f"{n} services with an IP (only {got})", interval=0.25)


async def allocated_events(client: KubeClient) -> tuple[int, int]:
    """(Services with an ``IPAllocated`` Event, sum of those Events' counts) in the bench namespace.

    Matched by uid: the earlier bursts reused the first names, and their Events are still there.
    """
    services, _ = await client.list_all(SERVICES, APP_NS)
    uids = {s["metadata"]["uid"] for s in services}
    items, _ = await client.list_all(EVENTS, APP_NS)
    mine = [e for e in items if e.get("reason") == "IPAllocated" and e["involvedObject"].get("uid") in uids]
    return len({e["involvedObject"]["uid"] for e in mine}), sum(int(e.get("count") or 1) for e in mine)


async def delete_all(client: KubeClient) -> None:
    items, _ = await client.list_all(SERVICES, APP_NS)
    names = [s["metadata"]["name"] for s in items]

    async def worker(chunk: list[str]) -> None:
        for name in chunk:
            await client.delete(SERVICES, name, APP_NS)

    await asyncio.gather(*(worker(names[i::32]) for i in range(32)))


async def burst(client: KubeClient, kubeconfig: Path, workdir: Path, n: int, label: str, *args: str) -> dict[str, Any]:
    ctl = Controller(kubeconfig, workdir / f"controller-{label}.log", *args)
    ctl.wait_ready()
    before = ctl.requests()
    start = time.monotonic()
    await create_services(client, [f"svc-{i:05d}" for i in range(n)])
    created = time.monotonic() - start
    await wait_all(client, n)
    elapsed = time.monotonic() - start
    await asyncio.sleep(1.0)  # let pool status and events settle before counting
    after = ctl.requests()
    ctl.stop()
    sent = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after}
    return {"label": label, "services": n, "create_s": created, "all_have_ips_s": elapsed, "requests": sent}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--total", type=int, default=10000)
    args = parser.parse_args()
    bin_dir = find_binaries()
    if bin_dir is None:
        sys.exit("kube-apiserver/etcd are not built: run scripts/build-k8s.sh")
    with tempfile.TemporaryDirectory(prefix="ironlb-bench-") as tmp:
        workdir = Path(tmp)
        cp = ControlPlane.start(bin_dir, workdir / "kube")
        try:
            kubeconfig = cp.kubeconfig
            async with KubeClient.from_kubeconfig(str(kubeconfig), qps=0) as client:
                for name in (NS, APP_NS):
                    await client.create(NAMESPACES, {"metadata": {"name": name}})
                await client.create(IP_ADDRESS_POOLS, {"metadata": {"name": "bench", "namespace": NS},
                                                       "spec": {"addresses": ["10.200.0.0/16"]}}, NS)
                results = []
                for label, extra in (("default limits (100 qps, burst 200; events 50 qps apart)", ()),
                                     ("--kube-api-qps 0 (events still 50 qps)", ("--kube-api-qps", "0"))):
                    results.append(await burst(client, kubeconfig, workdir, args.services, label, *extra))
                    await delete_all(client)
                    while (await count_with_ip(client))[1]:
                        await asyncio.sleep(0.5)
                for r in results:
                    total = sum(r["requests"].values())
                    per_verb = ", ".join(f"{k} {v}" for k, v in sorted(r["requests"].items()))
                    print(f"{r['services']} services at once, {r['label']}: created in {r['create_s']:.1f} s, "
                          f"all have IPs after {r['all_have_ips_s']:.1f} s; controller sent {total} requests "
                          f"({per_verb})")

                ctl = Controller(kubeconfig, workdir / "controller-rss.log", "--kube-api-qps", "0")
                ctl.wait_ready()
                idle_rss = ctl.rss_mb()
                start = time.monotonic()
                await create_services(client, [f"svc-{i:05d}" for i in range(args.total)])
                await wait_all(client, args.total)
                fill = time.monotonic() - start
                await asyncio.sleep(2.0)
                rss = ctl.rss_mb()
                events = (0, 0)
                last_change, last = time.monotonic(), (0, 0)
                while time.monotonic() - last_change < 30:  # until all are there, or no progress for 30 s
                    events = await allocated_events(client)
                    if events[0] >= args.total:
                        break
                    if events != last:
                        last_change, last = time.monotonic(), events
                    await asyncio.sleep(2.0)
                events_s = time.monotonic() - start
                print(f"{args.total} services at once: {events[0]} have their IPAllocated Event "
                      f"(counts sum {events[1]}) {events_s:.0f} s after the first create")
                ctl.stop()
                ctl = Controller(kubeconfig, workdir / "controller-restart.log")
                ready = ctl.wait_ready()
                await asyncio.sleep(2.0)
                rss_restart = ctl.rss_mb()
                moved = await count_with_ip(client)
                ctl.stop()
                print(f"{args.total} services: controller RSS {idle_rss:.0f} MB idle, {rss:.0f} MB with all "
                      f"allocated (filled in {fill:.0f} s); a restarted controller re-claimed all in {ready:.1f} s "
                      f"(start to /readyz), RSS {rss_restart:.0f} MB; services with IPs {moved[0]}/{moved[1]}")
        finally:
            for ctl in STARTED:
                ctl.stop()
            cp.stop()


if __name__ == "__main__":
    asyncio.run(main())
