"""Benchmark: what a speaker rollout by ``helm upgrade`` costs a Service on the real cluster lab.

ironlb is installed with ``helm install`` of charts/ironlb on a fresh 3-node cluster (src/ironlb/lab/kube_cluster.py),
the seed's Service and 3 more (``--services``, pinned IPs from the seed's pool; the election spreads them over
the nodes by hash) get their IPs, then each trial runs ``helm upgrade --reuse-values`` with a new speaker pod
annotation (a pod-template change, as new tolerations are) while the client sends an HTTP GET to each IP every 10 ms
(1 s timeout); the DaemonSet replaces the 3 speakers one node at a time. Per trial
(:func:`ironlb.lab.kube_demo.measure_rollout`): the rollout's duration, attempts and failed ones, the longest run of
failures (worst gap), the ARP senders, and any EXTERNAL-IP change, per Service.

Needs root, ``make k8s-cluster`` and scripts/build-helm.sh. From the repository root:
``python -m bench.helm_rollout [--trials 3] [--services 4] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from ironlb.lab.cluster import VIP
from ironlb.lab.kube_cluster import KubeCluster, default_bin_dir, default_images_dir, missing_requirements, wait_until
from ironlb.lab.kube_demo import lb_service
from ironlb.lab.kube_helm import helm_install, helm_upgrade_rollout, seed_service


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="speaker rollouts to measure (default 3)")
    parser.add_argument("--services", type=int, default=4,
                        help="Layer 2 Services probed, my-service and more from the seed's pool (default 4, max 11)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    bin_dir, images = default_bin_dir(), default_images_dir()
    problem = missing_requirements(bin_dir, images)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    assert bin_dir is not None
    cluster = KubeCluster.start(bin_dir, images, Path(tempfile.mkdtemp(prefix="ironlb-helm-bench-")))
    try:
        helm_install(cluster)
        seed_service(cluster)
        services = {"my-service": VIP}
        for n in range(1, min(args.services, 11)):
            name, ip = f"svc-{n}", f"192.168.1.{240 + n}"
            cluster.kubectl("apply", "-f", "-", input=lb_service(name, ip))
            services[name] = ip
        for name, ip in services.items():
            wait_until(lambda ip=ip: cluster.client_get(f"http://{ip}/"), 120, f"{name} answering at {ip}")
        trials = []
        for i in range(args.trials):
            r = helm_upgrade_rollout(cluster, f"speaker.podAnnotations.bench-rollout=t{i}", services=services)
            trials.append(asdict(r))
            print(json.dumps(trials[-1]), flush=True)
        out = {"timings": {k: round(v, 2) for k, v in cluster.timings.items()}, "rollouts": trials}
        print(json.dumps(out))
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
