"""``ironlb speaker`` from process start to its first announcement, with 1,000 Services (issue 16, "fast start").

A local etcd + kube-apiserver (the tests' ``ControlPlane``) holds one Node, ``--services`` LoadBalancer Services
with their ingress IP in the status and a one-endpoint EndpointSlice each, an IPAddressPool, a BGPAdvertisement and
a BGPPeer nobody answers (no membership: the first announcement is the BGP plan, sessions started). Each run starts
``ironlb speaker`` against it, waits for "first announcement" in its log and stops it; the figures are the ones the
process logs on its first line (imports done), on "caches synced" and on its first announcement: wall time since it
started and CPU time it used. On a shared machine read the CPU figures: wall time measures the other jobs too.

Run from the repository root: ``python -m bench.startup_speaker [--runs 8] [--services 1000] [--base DIR]``;
``--base DIR`` runs another checkout's ``ironlb speaker`` (its ``src`` first on the path) interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.support.controlplane import ControlPlane, find_binaries

from bench.speaker import concurrently
from bench.startup import figures, print_summary, run_until_announced
from ironlb.kube.client import ENDPOINT_SLICES, SERVICES, KubeClient

NS = "metallb-system"
APP = "default"
NODE = "n1"
MARKS = {"starting (": "first log line", "caches synced": "caches synced", "first announcement": "first announcement"}


def _ip(i: int) -> str:
    return f"10.50.{(i + 1) // 256}.{(i + 1) % 256}"


async def populate(cp: ControlPlane, services: int) -> None:
    """The Node, the configuration and ``services`` Services (with status) and EndpointSlices."""
    cp.create("/api/v1/namespaces", {"metadata": {"name": NS}})
    cp.create("/api/v1/nodes", {"metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}})
    cp.patch(f"/api/v1/nodes/{NODE}/status", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "bench", "lastHeartbeatTime": None},
        {"type": "NetworkUnavailable", "status": "False", "reason": "bench"},
    ]}})  # fmt: skip
    mlb = f"/apis/metallb.io/v1beta1/namespaces/{NS}"
    cp.create(f"{mlb}/ipaddresspools", {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                                        "metadata": {"name": "bgp"}, "spec": {"addresses": ["10.50.0.0/22"]}})
    cp.create(f"{mlb}/bgpadvertisements", {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
                                           "metadata": {"name": "hosts"}, "spec": {"ipAddressPools": ["bgp"]}})
    cp.create(f"/apis/metallb.io/v1beta2/namespaces/{NS}/bgppeers", {
        "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "r"},
        "spec": {"myASN": 64513, "peerASN": 64512, "peerAddress": "192.0.2.1", "holdTime": "9s"},
    })  # fmt: skip
    async with KubeClient.from_kubeconfig(str(cp.kubeconfig), qps=0) as client:

        async def create(i: int) -> None:
            name = f"s{i}"
            await client.create(ENDPOINT_SLICES, {
                "metadata": {"name": f"{name}-eps", "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [f"10.244.0.{i % 250 + 1}"], "nodeName": NODE,
                               "conditions": {"ready": True}}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }, APP)  # fmt: skip
            await client.create(SERVICES, {
                "metadata": {"name": name, "annotations": {"metallb.io/address-pool": "bgp"}},
                "spec": {"type": "LoadBalancer", "selector": {"app": name}, "allocateLoadBalancerNodePorts": False,
                         "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]},
            }, APP)  # fmt: skip
            await client.request("PATCH", f"/api/v1/namespaces/{APP}/services/{name}/status",
                                 body={"status": {"loadBalancer": {"ingress": [{"ip": _ip(i)}]}}},
                                 content_type="application/merge-patch+json")  # fmt: skip

        await concurrently(services, create)


def one_run(
    cp: ControlPlane, src: str | None, timeout: float = 60.0, profile: str | None = None
) -> dict[str, tuple[float, float]]:
    """Start ``ironlb speaker``, wait for its first announcement, stop it; the figures of its start-up lines.
    ``profile``: run it under cProfile, writing the profile there (its figures are then the profiled ones)."""
    cmd = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []), "-m", "ironlb", "speaker", "--node-name", NODE, "--kubeconfig", str(cp.kubeconfig),
           "--namespace", NS, "--port", "0", "--health-probe-port", "0"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTHONDONTWRITEBYTECODE")}
    if src:
        env["PYTHONPATH"] = src
    text = run_until_announced(cmd, env, signal.SIGTERM, 15.0, timeout)
    out = figures(text, MARKS)
    if "first announcement" not in out:
        raise RuntimeError(f"no first announcement:\n{text[-3000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--base", metavar="DIR", help="also run the checkout DIR's speaker (its src/), interleaved")
    parser.add_argument("--pause", type=float, default=3.0,
                        help="seconds between runs: the apiserver finishes the last speaker's status writes")
    parser.add_argument("--profile", metavar="FILE", help="first, one run under cProfile, its profile written to FILE")
    args = parser.parse_args(argv)
    bin_dir = find_binaries()
    if bin_dir is None:
        parser.error("kube-apiserver and etcd not found (scripts/build-k8s.sh)")
    sources: dict[str, str | None] = {"": None, **({" (base)": os.path.join(args.base, "src")} if args.base else {})}
    with tempfile.TemporaryDirectory(prefix="ironlb-startup-speaker-") as tmp:
        cp = ControlPlane.start(bin_dir, Path(tmp))
        try:
            asyncio.run(populate(cp, args.services))
            if args.profile:
                one_run(cp, None, profile=args.profile)
            rows: dict[str, list[dict[str, tuple[float, float]]]] = {tag: [] for tag in sources}
            for i in range(args.runs):
                for tag, src in sources.items():
                    time.sleep(args.pause)
                    row = one_run(cp, src)
                    rows[tag].append(row)
                    print(f"  {i + 1}{tag}: " + ", ".join(f"{k} {w * 1000:.0f} ms ({c * 1000:.0f} ms CPU)"
                                                         for k, (w, c) in row.items()), flush=True)  # fmt: skip
        finally:
            cp.stop()
    print(f"{args.services} Services, load average {os.getloadavg()[0]:.1f}")
    print_summary(rows, MARKS.values())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
