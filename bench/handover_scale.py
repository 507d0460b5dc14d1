"""A planned stop's Layer 2 hand-over at scale: how many handed-over IPs the successors' claims ended (issue 16).

Three nodes run ``ironlb run`` (membership at its defaults) with ``--services`` Layer 2 Services on pinned IPs. Each
trial sends SIGTERM to the node announcing the most IPs and reads its log (debug level): ``hand-over of IP done``
for each IP whose successor's gratuitous ARP it heard, ``nobody claimed N IPs`` for those it answered until
``--handover-timeout`` (2 s) instead; and how long the stop took. The node is then started again and takes its IPs
back before the next trial. Every handed-over IP has a live successor here, so every one should end claimed.

Needs root and ``ip``. Run from the repository root: ``python -m bench.handover_scale [--trials 5]
[--services 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

from ironlb.lab.cluster import StandaloneCluster
from ironlb.lab.lan import build_lan
from ironlb.lab.netns import NetnsLab, netns_available
from ironlb.lab.waits import wait_until

CONFIG = """apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: l2, namespace: metallb-system}
spec: {addresses: ["10.60.0.0/20"]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
"""


def services(n: int) -> str:
    docs = []
    for i in range(n):
        ip = f"10.60.{(i + 1) // 256}.{(i + 1) % 256}"
        meta = {"name": f"s{i}", "namespace": "default"}
        docs.append(json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "loadBalancerIP": ip}}))
    return "\n---\n".join(docs) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--services", type=int, default=1000)
    args = parser.parse_args(argv)
    reason = netns_available()
    if reason:
        print(f"cannot run: {reason}")
        return 2
    lab = NetnsLab()
    work = Path(tempfile.mkdtemp(prefix="ironlb-handover-"))
    cluster: StandaloneCluster | None = None
    try:
        lan = build_lan(lab)
        cluster = c = StandaloneCluster(lan, work, log_level="debug")
        c.write_manifest("config.yaml", CONFIG)
        c.write_manifest("services.yaml", services(args.services))
        c.start_all()

        def counts() -> dict[str, int]:
            return {n: len(((c.status(n) or {}).get("announcing") or {}).get("layer2") or []) for n in c.node_names}

        def steady() -> bool:
            return sum(counts().values()) == args.services and all(counts().values())

        wait_until(steady, 300, "every IP announced by one of three nodes", interval=0.2)
        totals = {"claimed": 0, "unclaimed": 0}
        print(f"{args.services} Services, 3 nodes, load average {os.getloadavg()[0]:.1f}")
        for trial in range(args.trials):
            now = counts()
            node = max(now, key=lambda n: now[n])
            mark = len(c.log(node))
            t0 = time.monotonic()
            c.stop(node, timeout=60)
            took = time.monotonic() - t0
            text = c.log(node)[mark:]
            claimed = len(re.findall(r"hand-over of \S+ done", text))
            unclaimed = sum(int(m) for m in re.findall(r"nobody claimed (\d+) IPs", text))
            totals["claimed"] += claimed
            totals["unclaimed"] += unclaimed
            print(f"  {trial + 1}: {node} announced {now[node]} IPs; SIGTERM -> exit {took:.2f} s; "
                  f"claimed {claimed}, nobody claimed {unclaimed}", flush=True)  # fmt: skip
            c.start(node)
            wait_until(steady, 300, "every IP announced again", interval=0.2)
            time.sleep(3.0)  # past the successors' gratuitous bursts
        print(f"total: claimed {totals['claimed']}, nobody claimed {totals['unclaimed']}; "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    finally:
        if cluster is not None:
            cluster.close()
        lab.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
