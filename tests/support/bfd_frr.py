"""FRR daemons (zebra, bfdd, optionally bgpd) in a namespace, each instance in its own directory (lab-notes recipe).

Used by the BFD interop tests and by ``bench/bfd_failover.py``. Processes are started through
:meth:`NetnsLab.popen`, so the lab kills them by PID at cleanup.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ironlb.lab.frr import FRRInstance
from ironlb.lab.netns import NetnsLab
from tests.support.bgp_interop import frr_bgp_conf

__all__ = ["FRRInstance", "frr_bfd_missing", "nft_drop_bfd"]

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
