"""Helpers for the controller's end-to-end tests (objects, waiting, the controller subprocess)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.support.controlplane import ControlPlane, KubeError, death_signal, free_port
from tests.support.waits import wait_until

REPO = Path(__file__).resolve().parents[2]
POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"
T = TypeVar("T")




def svc_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/services" + (f"/{name}" if name else "")


def pool_path(ns: str, name: str = "") -> str:
    return f"/apis/metallb.io/v1beta1/namespaces/{ns}/ipaddresspools" + (f"/{name}" if name else "")


def lb_service(name: str, *, annotations: dict[str, str] | None = None, ports: Sequence[int] = (80,),
               protocol: str = "TCP", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": f"p{p}", "port": p, "protocol": protocol} for p in ports],
            **spec,
        },
    }


def ip_pool(name: str, *addresses: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name},
        "spec": {"addresses": list(addresses), **spec},
    }


def create_service(cp: ControlPlane, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
    return dict(cp.create(svc_path(ns), obj))


def create_pool(cp: ControlPlane, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
    return dict(cp.create(pool_path(ns), obj))


def ingress(cp: ControlPlane, ns: str, name: str) -> list[str]:
    svc = cp.get(svc_path(ns, name))
    return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def pool_annotation(cp: ControlPlane, ns: str, name: str) -> str | None:
    svc = cp.get(svc_path(ns, name))
    return ((svc.get("metadata") or {}).get("annotations") or {}).get(POOL_ANNOTATION)


def events(cp: ControlPlane, ns: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events about Service ``name``, oldest first."""
    items = cp.get(f"/api/v1/namespaces/{ns}/events", fieldSelector=f"involvedObject.name={name}")["items"]
    items.sort(key=lambda e: (e.get("firstTimestamp") or "", e["metadata"]["name"]))
    return [(e["type"], e["reason"], e["message"]) for e in items if e.get("source", {}).get("component") ==
            "metallb-controller"]


def wait_ingress(cp: ControlPlane, ns: str, name: str, want: list[str] | None = None, timeout: float = 20.0) -> list[str]:
    """Wait until the Service has ingress IPs (exactly ``want`` if given) and return them."""
    if want is None:
        return wait_until(lambda: ingress(cp, ns, name), timeout, f"an IP for {ns}/{name}")
    wait_until(lambda: ingress(cp, ns, name) == want, timeout, f"{ns}/{name} ingress == {want}")
    return want


def wait_event(cp: ControlPlane, ns: str, name: str, reason: str, contains: str = "",
               timeout: float = 20.0) -> tuple[str, str, str]:
    def find() -> tuple[str, str, str] | None:
        for ev in events(cp, ns, name):
            if ev[1] == reason and contains in ev[2]:
                return ev
        return None

    return wait_until(find, timeout, lambda: f"event {reason} {contains!r} on {ns}/{name} (have {events(cp, ns, name)})")


def delete_test_services(cp: ControlPlane) -> None:
    """Delete every Service in the tests' namespaces (``t-*``); Namespaces themselves never finish deleting."""
    for svc in cp.get("/api/v1/services")["items"]:
        meta = svc["metadata"]
        if meta["namespace"].startswith("t-"):
            with contextlib.suppress(KubeError):
                cp.delete(svc_path(meta["namespace"], meta["name"]))


class ControllerProcess:
    """``python -m ironlb controller`` against the test control plane, logging to a file."""

    def __init__(
        self, cp: ControlPlane, namespace: str, log: Path, args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.cp = cp
        self.namespace = namespace
        self.log_path = log
        self.args = list(args)
        self.env = dict(env or {})
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True, timeout: float = 90.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        env.pop("KUBECONFIG", None)
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ironlb", "controller", "--kubeconfig", str(self.cp.kubeconfig),
                 "--namespace", self.namespace, "--port", str(self.port), "--health-probe-port", "0",
                 "--metrics-host", "127.0.0.1", "--log-level", "debug",
                 # Webhooks only where a test asks for them: many controllers share this machine's ports.
                 *([] if "--webhook-mode" in self.args else ["--webhook-mode", "disabled"]), *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                preexec_fn=death_signal(),  # a killed pytest leaves no controller behind
            )
        if wait:
            self.wait_ready(timeout)

    def http(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"controller exited with {self.proc.returncode}; log:\n{self.log()[-4000:]}")
        with contextlib.suppress(OSError):
            return self.http("/readyz")[0] == 200
        return False

    def wait_ready(self, timeout: float = 90.0) -> None:
        wait_until(self.ready, timeout, "controller /readyz", interval=0.1)

    def metrics(self) -> dict[str, float]:
        """Sample name with labels (as printed) -> value."""
        status, text = self.http("/metrics")
        assert status == 200
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait()
