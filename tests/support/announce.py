"""The announce measurement of ``bench/l2_failover.py`` and the lab tests: a Service file appears in the state
directory, and the figure is the time until the client's ARP requests for its IP are answered."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ironlb.lab.cluster import StandaloneCluster

ARPWAIT = Path(__file__).resolve().parent / "arpwait.py"


def pinned_service(name: str, ip: str, namespace: str = "default") -> str:
    """A LoadBalancer Service asking for ``ip`` (MetalLB's ``loadBalancerIPs`` annotation)."""
    return f"""\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
  annotations:
    metallb.io/loadBalancerIPs: {ip}
spec:
  type: LoadBalancer
  ports:
  - name: http
    protocol: TCP
    port: 80
"""


def arp_wait_command(ip: str, interval: float = 0.002, timeout: float = 5.0) -> list[str]:
    """The command line of the ARP prober (:mod:`tests.support.arpwait`), to run in the client namespace."""
    return [sys.executable, str(ARPWAIT), ip, "--interval", str(interval), "--timeout", str(timeout)]


@dataclass
class AnnounceResult:
    ip: str
    node: str | None = None
    arp_ms: float | None = None  # Service file written -> the client gets an ARP reply
    error: str | None = None


def measure_announce(
    cluster: StandaloneCluster, name: str, ip: str, timeout: float = 5.0, interval: float = 0.002
) -> AnnounceResult:
    """Add a Service asking for ``ip`` to the state directory; time until an ARP request from the client is answered.

    The client sends a raw ARP request every ``interval`` from before the file is written, so the figure is the
    time to the first reply, to within ``interval``.
    """
    cmd = arp_wait_command(ip, interval, timeout)
    proc = cluster.lan.lab.popen(cluster.client_ns, cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    result = AnnounceResult(ip)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        if '"ready"' not in ready:
            result.error = f"arp probe did not start: {ready!r}"
            return result
        t0 = time.monotonic()
        cluster.write_manifest(f"{name}.yaml", pinned_service(name, ip))
        line = proc.stdout.readline()
        proc.wait(timeout=timeout + 5)
        try:
            event = json.loads(line)
        except ValueError:
            result.error = f"arp probe: {line!r}"
            return result
        if event.get("ev") != "arp":
            result.error = f"no ARP answer for {ip} within {timeout} s"
            return result
        result.arp_ms = (event["t"] - t0) * 1000
        result.node = cluster.node_of_mac(event["mac"])
        return result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=3)
