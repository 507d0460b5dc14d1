"""Shared pieces of the BGP interop tests and benches: a LAN of nodes running ``ironlb run`` and a router.

The router is the LAN's "client" host (``.100`` / ``fd00:1::64``); nodes are ``node1..N`` (``.11``...). Each node
runs ``python -m ironlb run`` on its own state directory (no ``--members``: BGP does not need membership), so a
test can give nodes different views when it needs to. :func:`frr_lan` and :func:`bird_lan` build the whole
topology (LAN, router daemons, their configuration) and take it down again, whatever happens inside.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ironlb.lab.frr import FRRInstance
from ironlb.lab.lan import Lan, build_lan
from ironlb.lab.netns import NetnsLab
from tests.support.objects import peer_yaml as peer_yaml  # its home is tests.support.objects

ROOT = Path(__file__).resolve().parents[2]
ROUTER4 = "192.168.1.100"
ROUTER6 = "fd00:1::64"


def doc(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def service_yaml(name: str, ip: str, *, etp: str = "Cluster", labels: dict[str, str] | None = None) -> str:
    spec: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": 80}], "externalTrafficPolicy": etp}
    spec["loadBalancerIP"] = ip
    if ":" in ip:
        spec["ipFamilies"] = ["IPv6"]
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": labels or {}}
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}) + "\n"


def slice_yaml(service: str, *endpoints: tuple[str, str, bool]) -> str:
    """An EndpointSlice with (address, nodeName, ready) endpoints."""
    eps = [{"addresses": [a], "nodeName": n, "conditions": {"ready": r}} for a, n, r in endpoints]
    meta = {"name": f"{service}-eps", "namespace": "default", "labels": {"kubernetes.io/service-name": service}}
    obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta, "addressType": "IPv4"}
    obj["endpoints"] = eps
    return json.dumps(obj) + "\n"


class IronNode:
    """``ironlb run`` in a node namespace, with its own state directory and status file."""

    def __init__(self, lab: NetnsLab, ns: str, name: str, tmp: Path) -> None:
        self.lab, self.ns, self.name = lab, ns, name
        self.state = tmp / f"{name}-state"
        self.state.mkdir(exist_ok=True)
        self.status_file = tmp / f"{name}.status.json"
        self.log_file = tmp / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None

    def write(self, filename: str, text: str) -> None:
        """Atomically (re)write one manifest of the state directory."""
        tmp = self.state / f".{filename}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.state / filename)

    def remove(self, filename: str) -> None:
        (self.state / filename).unlink(missing_ok=True)

    def start(self) -> None:
        self.status_file.unlink(missing_ok=True)
        cmd = [
            sys.executable, "-m", "ironlb", "run", "--state", str(self.state), "--node", self.name,
            "--status-file", str(self.status_file), "--log-level", "debug",
        ]  # fmt: skip
        log = open(self.log_file, "a")  # noqa: SIM115 - closed with the process
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.proc = self.lab.popen(self.ns, cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def peer_state(self, peer: str) -> str | None:
        for p in self.status().get("bgpPeers", []):
            if p["peer"] == peer:
                return str(p["state"])
        return None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-5000:] if self.log_file.exists() else ""


class BgpLan:
    """``build_lan`` with the client as the router and every node ready to run ironlb."""

    def __init__(self, lab: NetnsLab, tmp: Path, nodes: int = 3) -> None:
        self.lab = lab
        self.lan: Lan = build_lan(lab, nodes=nodes, service_range="10.250.0.0/30")
        assert self.lan.client is not None
        self.router_ns = self.lan.client.netns
        self.nodes = {h.name: IronNode(lab, h.netns, h.name, tmp) for h in self.lan.nodes}

    def node_ip(self, name: str, v6: bool = False) -> str:
        host = self.lan.node(name)
        return host.ip6 if v6 else host.ip

    def write_all(self, filename: str, text: str) -> None:
        for n in self.nodes.values():
            n.write(filename, text)

    def remove_all(self, filename: str) -> None:
        for n in self.nodes.values():
            n.remove(filename)

    def stop_all(self) -> None:
        for n in self.nodes.values():
            try:
                n.stop(timeout=5)
            except subprocess.TimeoutExpired:
                n.stop(signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{n.log()}" for name, n in self.nodes.items())


def missing(*tools: str) -> str | None:
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


def frr_bgp_conf(
    asn: int,
    neighbors: Sequence[tuple[str, int, Sequence[str]]],
    *,
    options: Sequence[str] = (),
    router_id: str = ROUTER4,
) -> str:
    """FRR's ``router bgp ASN`` with (address, remote ASN, per-neighbor lines) neighbors.

    No policy is required on eBGP and nothing is activated by default: each neighbor is activated in the family
    of its address. ``options`` are more ``router bgp`` lines (``bgp graceful-restart``, ...).
    """
    lines = [f"router bgp {asn}", f" bgp router-id {router_id}", " no bgp ebgp-requires-policy"]
    lines += [" no bgp default ipv4-unicast", *(f" {o}" for o in options)]
    for addr, remote, more in neighbors:
        lines.append(f" neighbor {addr} remote-as {remote}")
        lines += [f" neighbor {addr} {m}" for m in more]
    for family, v6 in (("ipv4", False), ("ipv6", True)):
        active = [addr for addr, _, _ in neighbors if (":" in addr) == v6]
        if active:
            lines += [f" address-family {family} unicast", *(f"  neighbor {a} activate" for a in active)]
            lines.append(" exit-address-family")
    return "\n".join(lines) + "\n"


def bird_bgp_conf(neighbor: str, local_asn: int, neighbor_asn: int, *lines: str, preamble: str = "") -> str:
    """BIRD 2's configuration of one BGP session ``ironlb`` from the router to ``neighbor`` (hold time 9 s).

    ``lines`` go into the ``protocol bgp`` block, ``preamble`` (e.g. a ``protocol bfd``) before it.
    """
    body = "".join(f"  {line}\n" for line in lines)
    return (
        f"router id {ROUTER4};\nprotocol device {{ }}\n{preamble}"
        f"protocol bgp ironlb {{\n  local {ROUTER4} as {local_asn};\n  neighbor {neighbor} as {neighbor_asn};\n"
        f"  hold time 9;\n{body}  ipv4 {{ import all; export none; }};\n}}\n"
    )


class Bird:
    """BIRD 2 in the router namespace, in a directory of its own; queried with ``birdc``."""

    def __init__(self, lab: NetnsLab, ns: str) -> None:
        self.lab, self.ns = lab, ns
        self.dir = Path(tempfile.mkdtemp(prefix=f"{lab.prefix}-bird-"))
        self.sock = self.dir / "bird.ctl"

    def start(self, config: str) -> None:
        conf = self.dir / "bird.conf"
        conf.write_text(config)
        cmd = ["bird", "-f", "-c", str(conf), "-s", str(self.sock), "-P", str(self.dir / "bird.pid")]
        self.lab.popen(self.ns, cmd)

    def show(self, *cmd: str) -> str:
        """``birdc`` output (empty while BIRD is starting)."""
        return subprocess.run(["birdc", "-s", str(self.sock), *cmd], capture_output=True, text=True, timeout=10).stdout

    def logs(self) -> str:
        try:
            return self.show("show", "protocols", "all")
        except (OSError, subprocess.SubprocessError) as err:
            return f"birdc: {err}"

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class _Router(Protocol):
    def logs(self) -> str: ...
    def cleanup(self) -> None: ...


R = TypeVar("R", bound=_Router)


@contextmanager
def _routed_lan(lab: NetnsLab, tmp: Path, nodes: int, router: Callable[[BgpLan], R]) -> Iterator[tuple[BgpLan, R]]:
    """The LAN and its router; on the way out the nodes are stopped, the lab removed, the router's files too."""
    lan: BgpLan | None = None
    rtr: R | None = None
    try:
        lan = BgpLan(lab, tmp, nodes=nodes)
        rtr = router(lan)
        yield lan, rtr
    except Exception:
        print(lan.logs() if lan is not None else "")
        print(rtr.logs() if rtr is not None else "")
        raise
    finally:
        if lan is not None:
            lan.stop_all()
        lab.cleanup()  # processes first, then the router's directory
        if rtr is not None:
            rtr.cleanup()


def frr_lan(
    lab: NetnsLab,
    tmp: Path,
    *,
    nodes: int = 3,
    daemons: Sequence[str] = ("zebra", "bgpd"),
    config: Callable[[BgpLan], str] | None = None,
) -> contextlib.AbstractContextManager[tuple[BgpLan, FRRInstance]]:
    """``nodes`` ironlb nodes and FRR (``daemons``) as their router, configured with ``config(lan)`` if given."""

    def router(lan: BgpLan) -> FRRInstance:
        frr = FRRInstance(lab, lan.router_ns, daemons)
        try:
            frr.start()
            if config is not None:
                frr.configure(config(lan))
        except Exception:
            print(frr.logs())
            frr.cleanup()
            raise
        return frr

    return _routed_lan(lab, tmp, nodes, router)


def bird_lan(
    lab: NetnsLab, tmp: Path, config: Callable[[BgpLan], str], *, nodes: int = 1
) -> contextlib.AbstractContextManager[tuple[BgpLan, Bird]]:
    """``nodes`` ironlb nodes and BIRD 2 as their router, configured with ``config(lan)``."""

    def router(lan: BgpLan) -> Bird:
        bird = Bird(lab, lan.router_ns)
        bird.start(config(lan))
        return bird

    return _routed_lan(lab, tmp, nodes, router)
