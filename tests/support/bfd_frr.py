"""FRR daemons (zebra, bfdd, optionally bgpd) in a namespace, each instance in its own directory (lab-notes recipe).

Used by the BFD interop tests and by ``bench/bfd_failover.py``. Processes are started through
:meth:`NetnsLab.popen`, so the lab kills them by PID at cleanup.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ironlb.lab.frr import FRRInstance
from ironlb.lab.netns import NetnsLab
from tests.support.bgp_interop import frr_bgp_conf

__all__ = ["FRRInstance", "frr_bfd_missing", "nft_drop_bfd", "node_router"]

FRR_DIR = Path("/usr/lib/frr")


def frr_bfd_missing() -> str | None:
    """None when zebra, bfdd, bgpd, vtysh and nft are installed, else why not."""
    for daemon in ("zebra", "bfdd", "bgpd"):
        if not (FRR_DIR / daemon).exists():
            return f"FRR not installed ({FRR_DIR / daemon} missing; apt-get install frr)"
    for tool in ("vtysh", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} missing"
    return None


@contextmanager
def node_router(
    lab: NetnsLab,
    daemons: Sequence[str],
    node_addrs: Sequence[str],
    router_addrs: Sequence[str],
    *,
    config: str | None = None,
    node_sysctls: Mapping[str, str] | None = None,
    router_sysctls: Mapping[str, str] | None = None,
    before_start: Callable[[str, str], None] | None = None,
) -> Iterator[tuple[str, str, FRRInstance]]:
    """Namespaces ``node`` and ``rtr`` linked by a veth (``eth0`` both ends, the given CIDRs), FRR's ``daemons``
    in ``rtr`` (configured with ``config`` if given); yields (node, rtr, frr).

    ``before_start(node, rtr)`` may add to the topology before FRR starts. On the way out the lab is cleaned up
    (its processes first), then FRR's directory.
    """
    frr: FRRInstance | None = None
    try:
        node = lab.netns("node", dict(node_sysctls or {}))
        rtr = lab.netns("rtr", dict(router_sysctls or {}))
        lab.veth(node, "eth0", rtr, "eth0")
        lab.addr(node, "eth0", *node_addrs)
        lab.addr(rtr, "eth0", *router_addrs)
        if before_start is not None:
            before_start(node, rtr)
        frr = FRRInstance(lab, rtr, daemons)
        frr.start()
        if config is not None:
            frr.configure(config)
        yield node, rtr, frr
    finally:
        lab.cleanup()
        if frr is not None:
            frr.cleanup()


def nft_drop_bfd(lab: NetnsLab, ns: str, *, outgoing: bool = True) -> None:
    """Silently drop BFD control packets (UDP 3784/4784) leaving (or entering) ``ns``: a silent death."""
    hook, field = ("output", "dport") if outgoing else ("input", "dport")
    lab.run(ns, ["nft", "add", "table", "inet", "ilbbfd"])
    lab.run(
        ns,
        ["nft", "add", "chain", "inet", "ilbbfd", "c", "{", "type", "filter", "hook", hook, "priority", "0", ";", "}"],
    )
    lab.run(ns, ["nft", "add", "rule", "inet", "ilbbfd", "c", "udp", field, "{", "3784,", "4784", "}", "drop"])


def nft_clear(lab: NetnsLab, ns: str) -> None:
    lab.run(ns, ["nft", "delete", "table", "inet", "ilbbfd"], check=False)


def router_conf(router_id: str, node: str, *, my_asn: int = 64513, node_asn: int = 64512, hold: int = 90) -> str:
    """bgpd + bfdd config of a router peering with ``node`` over BFD (300 ms x 3, profile ``fast``)."""
    profile = "bfd\n profile fast\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n !\n!\n"
    neighbor = [f"timers 30 {hold}", "timers connect 1", "bfd", "bfd profile fast"]
    return profile + frr_bgp_conf(my_asn, [(node, node_asn, neighbor)], router_id=router_id)


def kernel_route(lab: NetnsLab, ns: str, prefix: str) -> str:
    """``ip route show PREFIX`` in ``ns`` (empty when there is no such route)."""
    return lab.run(ns, ["ip", "-4", "route", "show", prefix]).stdout.strip()
