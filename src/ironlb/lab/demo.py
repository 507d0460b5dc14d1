"""``ironlb demo``: the seed example on a LAN of three nodes in network namespaces, failover included.

Builds a switch, three nodes running ``ironlb run`` and a client, all in namespaces named ``<prefix>-...``; applies
the seed example (its embedded copy: pool 192.168.1.240-192.168.1.250 and ``default/my-service``); shows which node
answers for the IP (status files, ``arping``, an HTTP GET from the client); kills the announcing node and prints the
measured failover time. Everything it made is removed on exit, also on Ctrl-C, SIGTERM and errors. Only addresses
inside its own namespaces are used. Needs root, ``ip`` (iproute2) and ``arping``.
"""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

from ironlb.lab.cluster import (
    SEED_CONFIG_FILE,
    SEED_SERVICE_FILE,
    SEED_SERVICE_KEY,
    VIP,
    ClientProbe,
    StandaloneCluster,
)
from ironlb.lab.failover import FailoverResult, measure_failover, percentile, restore
from ironlb.lab.frr import VTYSH_NOT_READY, FRRInstance, frr_missing
from ironlb.lab.lan import Lan, build_lan, start_http_servers
from ironlb.lab.netns import NetnsLab, netns_available
from ironlb.lab.waits import WaitTimeout, wait_until

DEFAULT_PREFIX = "ilbdemo"
# The namespaces the demo makes: <prefix>-<suffix> (build_lan's for three nodes, and the router).
SUFFIXES = ("sw", "node1", "node2", "node3", "client", "router")

ROUTER_IP = "192.168.1.1"
ROUTER_ASN = 64512
NODE_ASN = 64513
# BGP mode on top of the seed example: the same pool is announced to the router by every node (ETP Cluster), so
# the router has the three nodes as ECMP next hops. BFD (300 ms x 3) takes a dead node's routes away in about a
# second; the 3 s hold time is the fallback.
BGP_CONFIG = f"""\
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {{name: fast, namespace: metallb-system}}
spec: {{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router, namespace: metallb-system}}
spec: {{myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: {ROUTER_IP}, holdTime: 3s, keepaliveTime: 1s,
        bfdProfile: fast}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: to-router, namespace: metallb-system}}
spec:
  ipAddressPools: [default]
  communities: ["{ROUTER_ASN}:100"]
"""
BGP_CONFIG_FILE = "bgp.yaml"


def router_config(nodes: list[str], bfd: bool) -> str:
    neighbors = "".join(f" neighbor {ip} remote-as {NODE_ASN}\n" + (f" neighbor {ip} bfd\n" if bfd else "")
                        for ip in nodes)
    return (
        f"router bgp {ROUTER_ASN}\n bgp router-id {ROUTER_IP}\n no bgp ebgp-requires-policy\n"
        f" bgp bestpath as-path multipath-relax\n{neighbors}"
        " address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n"
    )


class DemoError(Exception):
    """A step of the demo did not give the expected result."""


class Demo:
    def __init__(self, out: TextIO, *, prefix: str, trials: int, failover: bool, keep_going: bool) -> None:
        self.out = out
        self.prefix = prefix
        self.trials = trials
        self.failover = failover
        self.keep_going = keep_going
        self.lab = NetnsLab(prefix)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        self.lan: Lan | None = None
        self.router: FRRInstance | None = None
        self.cluster: StandaloneCluster | None = None
        self.probe: ClientProbe | None = None
        self.step_no = 0

    # ------------------------------------------------------------------ output
    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def step(self, title: str) -> None:
        self.step_no += 1
        self.say(f"\n== {self.step_no}. {title}")

    def item(self, text: str) -> None:
        self.say(f"   {text}")

    # ------------------------------------------------------------------ the story
    def run(self) -> int:
        self.say(f"ironlb demo: Layer 2 mode on a LAN in network namespaces (prefix {self.prefix})")
        cluster = self.build()
        self.apply_seed(cluster)
        owner = self.who_answers(cluster)
        if self.router is not None:
            self.bgp(cluster)
        if not self.failover:
            return 0
        results: list[FailoverResult] = []
        for trial in range(1, self.trials + 1):
            if trial > 1:
                owner = self.bring_back(cluster, results[-1].dead)
            result = self.fail(cluster, owner, trial)
            results.append(result)
            if self.router is not None and result.error is None:
                self.router_after_failover(cluster, result.dead)
            if result.error and not self.keep_going:
                raise DemoError(result.error)
        if self.trials > 1:
            self.summary(results)
        return 0 if all(r.error is None for r in results) else 1

    def build(self) -> StandaloneCluster:
        self.step("Build the LAN: a switch, three nodes and a client, each in its own network namespace")
        t0 = time.monotonic()
        self.lan = lan = build_lan(self.lab)
        start_http_servers(lan)
        for host in lan.nodes:
            self.item(f"{host.name:<7} {host.ip:<14} {host.mac}   namespace {host.netns}")
        assert lan.client is not None
        self.item(f"{'client':<7} {lan.client.ip:<14} {lan.client.mac}   namespace {lan.client.netns}")
        self.item(f"switch: bridge br0 in {lan.switch}; built in {(time.monotonic() - t0) * 1000:.0f} ms")
        self.item("every node runs a small HTTP server on port 80 that answers with the node's name")
        self.item("nodes accept traffic for 192.168.1.240/28 (a local route, as kube-proxy would); their kernels")
        self.item("never answer ARP for it (arp_ignore=1): only ironlb does")
        if frr_missing(("zebra", "bgpd")) is None:
            router = self.lab.netns("router")
            self.lab.veth(router, "eth0", lan.switch, "prtr", mac_a="02:00:00:00:00:01")
            self.lab.run(lan.switch, ["ip", "link", "set", "prtr", "master", "br0", "up"])
            self.lab.addr(router, "eth0", f"{ROUTER_IP}/24")
            bfd = frr_missing(("bfdd",)) is None
            daemons = ("zebra", "bgpd", "bfdd") if bfd else ("zebra", "bgpd")
            self.router = FRRInstance(self.lab, router, daemons)
            self.router.start()
            self.router.configure(router_config([n.ip for n in lan.nodes], bfd))
            self.item(f"{'router':<7} {ROUTER_IP:<14} 02:00:00:00:00:01   namespace {router}: "
                      f"FRR ({', '.join(daemons)}), AS {ROUTER_ASN}, multipath")
        else:
            self.item("FRR is not installed: the BGP part of the demo is skipped")
        self.cluster = StandaloneCluster(lan, self.workdir)
        return self.cluster

    def router_routes(self) -> dict[str, list[str]]:
        """The router's BGP routes: prefix -> next hops it installed (ECMP when several)."""
        assert self.router is not None
        table = self.router.json("show ip route bgp json")
        routes: dict[str, list[str]] = {}
        for prefix, entries in table.items():
            for entry in entries:
                hops = [h["ip"] for h in entry.get("nexthops", []) if h.get("active") and "ip" in h]
                if entry.get("installed") or entry.get("selected"):
                    routes[prefix] = sorted(hops, key=lambda ip: tuple(int(x) for x in ip.split(".")))
        return routes

    def show_routes(self, cluster: StandaloneCluster) -> dict[str, list[str]]:
        routes = self.router_routes()
        assert self.lan is not None
        names = {n.ip: n.name for n in self.lan.nodes}
        self.item("router$ show ip route bgp")
        for prefix, hops in sorted(routes.items()):
            self.item(f"  {prefix} via " + ", ".join(f"{h} ({names.get(h, '?')})" for h in hops))
        if not routes:
            self.item("  (no BGP routes)")
        return routes

    def bgp(self, cluster: StandaloneCluster) -> None:
        self.step(f"BGP mode: the nodes peer with the router (AS {NODE_ASN} -> AS {ROUTER_ASN}) and advertise {VIP}")
        cluster.write_manifest(BGP_CONFIG_FILE, BGP_CONFIG)
        self.item(f"added {BGP_CONFIG_FILE}: BGPPeer router ({ROUTER_IP}, holdTime 3s, BFD 300 ms x 3) and a "
                  f"BGPAdvertisement of the pool with community {ROUTER_ASN}:100")
        prefix = f"{VIP}/32"
        assert self.lan is not None
        everyone = sorted(n.ip for n in self.lan.nodes)
        t0 = time.monotonic()
        if not self.router_waits(lambda: sorted(self.router_routes().get(prefix, [])) == everyone, 20, "routes"):
            raise DemoError(f"the router did not get {prefix} from all three nodes: {self.router_routes()}")
        self.item(f"all three sessions up and {prefix} installed in {(time.monotonic() - t0) * 1000:.0f} ms")
        self.show_routes(cluster)
        if "bfdd" in self.router.daemons if self.router else False:
            if self.router_waits(lambda: len(self.bfd_up()) == len(everyone), 10, "BFD up with every node"):
                self.item("router$ show bfd peers: " + ", ".join(f"{ip} up" for ip in self.bfd_up()))
            else:
                self.item(f"router: BFD is not up with every node: {self.bfd_up()}")
        self.item("=> ECMP: the router spreads flows to the VIP over the three nodes")

    def router_waits(self, check: Callable[[], bool], timeout: float, what: str) -> bool:
        """Wait until ``check`` of the router holds; vtysh fails while FRR's daemons are starting: not yet."""
        try:
            return wait_until(check, timeout, f"the router: {what}", retry=VTYSH_NOT_READY)
        except WaitTimeout:
            return False

    def bfd_up(self) -> list[str]:
        assert self.router is not None
        return sorted(str(p["peer"]) for p in self.router.json("show bfd peers json") if p.get("status") == "up")

    def router_after_failover(self, cluster: StandaloneCluster, dead: str) -> None:
        assert self.lan is not None
        prefix = f"{VIP}/32"
        alive = sorted(n.ip for n in self.lan.nodes if n.name != dead)
        if not self.router_waits(lambda: sorted(self.router_routes().get(prefix, [])) == alive, 15, "routes"):
            raise DemoError(f"the router kept {dead} as a next hop: {self.router_routes()}")
        dead_ip = self.lan.node(dead).ip
        neighbor = self.router.json(f"show bgp neighbors {dead_ip} json").get(dead_ip, {}) if self.router else {}
        reason = neighbor.get("lastNotificationReason") or neighbor.get("lastResetDueTo", "?")
        self.item(f"router: the session with {dead} went down ({reason}); {dead} is no longer a next hop of {prefix}")
        self.show_routes(cluster)

    def apply_seed(self, cluster: StandaloneCluster) -> None:
        self.step("Apply the seed example: pool 192.168.1.240-192.168.1.250, Service default/my-service")
        cluster.apply_seed()
        self.item(f"state directory {cluster.state}: {SEED_CONFIG_FILE}, {SEED_SERVICE_FILE}")
        cluster.start_all()
        self.item(
            f"started `ironlb run --state DIR --node NODE --members {cluster.lan.members_flag()} ...` on "
            + ", ".join(cluster.node_names)
        )
        self.item(
            f"membership: heartbeat every {cluster.ml_interval * 1000:.0f} ms, "
            f"a node is dead after {cluster.ml_dead_timeout * 1000:.0f} ms of silence"
        )
        try:
            # 60 s: includes starting three Python processes, slow on a loaded machine
            wait_until(lambda: all(cluster.ingress(n) for n in cluster.node_names), 60, "an IP on every node")
        except WaitTimeout:
            raise DemoError("the nodes did not assign an IP to default/my-service within 60 s") from None
        for node in cluster.node_names:
            self.item(f"{node}: {SEED_SERVICE_KEY} -> {', '.join(cluster.ingress(node))}")

    def who_answers(self, cluster: StandaloneCluster) -> str:
        self.step(f"Who answers for {VIP}")
        owner = cluster.wait_steady(VIP, timeout=60)
        if owner is None:
            raise DemoError(f"the nodes did not agree on one announcer of {VIP}: {cluster.announcers(VIP)}")
        for node in cluster.node_names:
            self.item(f"{node} status file: " + ("announces " + VIP if node == owner else "stands by"))
        self.show_client(cluster, owner)
        return owner

    def show_client(self, cluster: StandaloneCluster, owner: str) -> None:
        """arping and an HTTP GET from the client; both must reach ``owner``."""
        count = 2
        replies = cluster.arping(VIP, count=count)
        if not replies:  # arping's first request can go out before it listens: once more, a little longer
            count = 3
            replies = cluster.arping(VIP, count=count)
        self.item(f"client$ arping -c {count} {VIP}")
        for mac, line in replies:
            self.item(f"  {line}   <- {cluster.node_of_mac(mac) or 'not a node'}")
        if not replies:
            self.item("  no reply")
        macs = {mac for mac, _ in replies}
        if macs != {cluster.lan.node(owner).mac}:
            raise DemoError(f"arping: expected only {owner}'s MAC {cluster.lan.node(owner).mac}, got {sorted(macs)}")
        got = cluster.http_get(VIP)
        if got.get("ok"):
            self.item(f"client$ GET http://{VIP}/ -> {got['status']} \"{got['body']}\" in {got['ms']:.1f} ms")
        else:
            self.item(f"client$ GET http://{VIP}/ -> failed: {got.get('err')}")
        if got.get("body") != owner:
            raise DemoError(f"HTTP: expected an answer from {owner}, got {got}")
        self.item(f"=> {owner} answers for {VIP}")

    def fail(self, cluster: StandaloneCluster, owner: str, trial: int) -> FailoverResult:
        what = f"Failover: {owner} dies (kill -9 of its ironlb run, eth0 down)"
        self.step(what if self.trials == 1 else f"{what}, trial {trial}/{self.trials}")
        probe = self.client_probe(cluster)
        self.item(f"the client sends GET http://{VIP}/ every 10 ms on a new connection (200 ms timeout each)")
        result = measure_failover(cluster, probe)
        if result.error:
            self.item(f"FAILED: {result.error}")
            return result
        assert result.new is not None and result.total_ms is not None
        detail = []
        if result.detect_ms is not None:
            detail.append(f"{result.new} saw {owner} dead after ~{result.detect_ms:.0f} ms")
        if result.announce_ms is not None:
            detail.append(f"announced {VIP} after {result.announce_ms:.0f} ms")
        if result.garp_ms is not None:
            detail.append(f"its gratuitous ARP reached the client after {result.garp_ms:.0f} ms")
        for line in detail:
            self.item(line)
        self.item(f"failover time: {result.total_ms:.0f} ms (kill -> first HTTP answer from {result.new}; "
                  f"{result.failed} client requests failed meanwhile)")
        self.show_client(cluster, result.new)
        return result

    def bring_back(self, cluster: StandaloneCluster, node: str) -> str:
        self.step(f"{node} comes back (eth0 up, ironlb run started again)")
        probe = self.client_probe(cluster)
        if not restore(cluster, node, probe):
            raise DemoError(f"{node} did not take {VIP} back")
        self.item(f"the election is per IP and stateless: {VIP} moves back to {node}, and the client follows")
        return node

    def summary(self, results: list[FailoverResult]) -> None:
        self.step("Failover times")
        times = [r.total_ms for r in results if r.total_ms is not None]
        failed = sum(1 for r in results if r.error)
        if times:
            self.item(
                f"{len(times)} trials: p50 {percentile(times, 50):.0f} ms, p95 {percentile(times, 95):.0f} ms, "
                f"max {max(times):.0f} ms" + (f"; {failed} failed" if failed else "")
            )

    def client_probe(self, cluster: StandaloneCluster) -> ClientProbe:
        if self.probe is None or self.probe.proc.poll() is not None:
            self.probe = cluster.probe(VIP)
            if not self.probe.wait_ready():
                raise DemoError("the client probe did not start")
        return self.probe

    # ------------------------------------------------------------------ teardown
    def dump_logs(self) -> None:
        if self.cluster is None:
            return
        for node in self.cluster.node_names:
            tail = self.cluster.log(node).splitlines()[-15:]
            if tail:
                self.say(f"--- last lines of {node}'s log")
                for line in tail:
                    self.say(f"    {line}")

    def cleanup(self) -> None:
        """Stop what we started (by PID), delete our namespaces and the temporary directory."""
        self.say("\n== Clean up")
        processes = len(self.lab.processes)
        namespaces = len(self.lab.namespaces)
        if self.probe is not None:
            self.probe.close()
        if self.cluster is not None:
            self.cluster.close()
        self.lab.cleanup()
        if self.router is not None:
            self.router.cleanup()
        # A namespace whose creation was interrupted before the lab recorded it. None of these names existed
        # when the demo started (run_demo checks), so whichever exists now is ours.
        ours = {f"{self.prefix}-{suffix}" for suffix in SUFFIXES}
        stray = [ns for ns in list_netns() if ns in ours]
        for ns in stray:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        left = [ns for ns in list_netns() if ns in ours]
        self.item(f"stopped the {processes} processes it started (by PID), deleted its {namespaces + len(stray)} "
                  f"namespaces and {self.workdir}")
        if left:
            self.item(f"WARNING: namespaces left behind: {', '.join(left)}")


def list_netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


@contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP raise SystemExit (SIGINT already raises KeyboardInterrupt), so ``finally`` runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def ignoring_signals(*signums: int) -> Iterator[None]:
    """Ignore ``signums`` inside the block: a second Ctrl-C must not interrupt a cleanup half-way."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_demo(
    *,
    prefix: str | None = None,
    trials: int = 1,
    failover: bool = True,
    keep_going: bool = False,
    out: TextIO | None = None,
) -> int:
    """The whole demo; 0 when every step gave the expected result, 1 when one did not, 2 when it cannot run."""
    stream = out or sys.stdout
    reason = netns_available()
    if reason is None and shutil.which("arping") is None:
        reason = "needs arping (apt-get install arping)"
    if reason:
        print(f"ironlb demo: {reason}", file=sys.stderr)
        return 2
    prefix = prefix or f"{DEFAULT_PREFIX}{secrets.token_hex(3)}"
    if not re.fullmatch(r"[A-Za-z0-9_]{1,32}", prefix):
        print(f"ironlb demo: --prefix {prefix!r}: use 1 to 32 letters, digits or _", file=sys.stderr)
        return 2
    taken = [ns for ns in list_netns() if ns.startswith(f"{prefix}-")]
    if taken:
        print(f"ironlb demo: namespaces with prefix {prefix!r} exist already: {', '.join(taken)}", file=sys.stderr)
        return 2
    with terminate_as_exit():
        demo = Demo(stream, prefix=prefix, trials=max(1, trials), failover=failover, keep_going=keep_going)
        code = 1
        try:
            code = demo.run()
        except DemoError as err:
            demo.say(f"\nironlb demo: FAILED: {err}")
            demo.dump_logs()
        except KeyboardInterrupt:
            demo.say("\nironlb demo: interrupted")
            code = 130
        except SystemExit as stop:
            demo.say("\nironlb demo: terminated")
            code = stop.code if isinstance(stop.code, int) else 1
        except (OSError, subprocess.SubprocessError) as err:
            demo.say(f"\nironlb demo: error: {err}")
            if isinstance(err, subprocess.CalledProcessError) and err.stderr:
                demo.say(f"    {str(err.stderr).strip()}")
            demo.dump_logs()
        finally:
            with ignoring_signals(signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                demo.cleanup()
    if code == 0:
        demo.say("\ndone: every step gave the expected result")
    return code
