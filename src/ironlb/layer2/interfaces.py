"""Which interfaces get ARP / NDP responders (reference 5.2), plus a thin reader.

Selection is a pure function over :class:`InterfaceRecord` values so every rule can
be unit-tested; :func:`read_interfaces` only gathers those records from the kernel.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Final, Literal

from ironlb.layer2.wire.ethernet import MAC_LEN, mac_from_str

log = logging.getLogger(__name__)


class AllInterfaces(enum.Enum):
    """Sentinel type: announce on every selected interface. Here rather than in :mod:`.responder`, so that the
    main process, which only names it (the responders run in the fast process), does not import the responder."""

    ALL = "ALL"


ALL: Final = AllInterfaces.ALL
InterfaceSelector = frozenset[str] | Literal[AllInterfaces.ALL]

# MetalLB's config/native/exclude-l2-config.yaml, in its order.
DEFAULT_EXCLUDE_PATTERNS: tuple[str, ...] = (
    r"^docker.*",
    r"^cbr.*",
    r"^dummy.*",
    r"^virbr.*",
    r"^lxcbr.*",
    r"^veth.*",
    r"^lo$",
    r"^cali.*",
    r"^tunl.*",
    r"^flannel.*",
    r"^kube-ipvs.*",
    r"^cni.*",
    r"^nodelocaldns.*",
    r"^lxc.*",
)

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_NOARP = 0x80


@dataclass(frozen=True, slots=True)
class InterfaceRecord:
    """What the kernel says about one interface."""

    name: str
    index: int
    flags: int
    mac: bytes
    has_master: bool = False
    addresses: tuple[IPv4Address | IPv6Address, ...] = ()


@dataclass(frozen=True, slots=True)
class SelectedInterface:
    """An interface that gets responders, and which ones."""

    name: str
    index: int
    mac: bytes
    arp: bool
    ndp: bool
    link_local: IPv6Address | None = field(default=None)


def compile_exclude(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """Join patterns as MetalLB does, ``(a)|(b)``; None when there are none."""
    parts = [f"({p})" for p in patterns]
    return re.compile("|".join(parts)) if parts else None


def select_interfaces(
    records: Iterable[InterfaceRecord],
    exclude: Sequence[str] = DEFAULT_EXCLUDE_PATTERNS,
) -> list[SelectedInterface]:
    """Pick responder interfaces, sorted by name.

    Skips excluded names, interfaces that are down, enslaved (to a bridge or bond:
    the master answers instead) or NOARP, and those without an Ethernet MAC. ARP
    needs broadcast capability; NDP needs an IPv6 link-local address.
    """
    pattern = compile_exclude(exclude)
    selected: list[SelectedInterface] = []
    for rec in records:
        if pattern is not None and pattern.search(rec.name):
            continue
        if not rec.flags & IFF_UP or rec.flags & IFF_NOARP or rec.has_master:
            continue
        if len(rec.mac) != MAC_LEN or rec.mac == b"\x00" * MAC_LEN:
            continue
        link_locals = sorted(a for a in rec.addresses if isinstance(a, IPv6Address) and a.is_link_local)
        arp = bool(rec.flags & IFF_BROADCAST)
        ndp = bool(link_locals)
        if arp or ndp:
            selected.append(SelectedInterface(rec.name, rec.index, rec.mac, arp, ndp, link_locals[0] if ndp else None))
    return sorted(selected, key=lambda s: s.name)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def read_ipv6_addresses(path: str = "/proc/net/if_inet6") -> dict[str, list[IPv6Address]]:
    """IPv6 addresses per interface name, from procfs (which follows the caller's netns)."""
    text = _read_text(path)
    result: dict[str, list[IPv6Address]] = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 6 or len(fields[0]) != 32:
            continue
        try:
            addr = IPv6Address(bytes.fromhex(fields[0]))
        except ValueError:
            continue
        result.setdefault(fields[5], []).append(addr)
    return result


def read_interfaces(sysfs: str = "/sys/class/net", if_inet6: str = "/proc/net/if_inet6") -> list[InterfaceRecord]:
    """Build records for the current network namespace.

    Names come from ``if_nameindex()`` (always the caller's netns); flags, MAC and
    master from sysfs (remounted per netns by ``ip netns exec``); IPv6 addresses from
    procfs. IPv4 addresses are not needed for selection and are not read.
    """
    v6 = read_ipv6_addresses(if_inet6)
    records: list[InterfaceRecord] = []
    for index, name in socket.if_nameindex():
        base = os.path.join(sysfs, name)
        flags_text = _read_text(os.path.join(base, "flags"))
        mac_text = _read_text(os.path.join(base, "address"))
        if flags_text is None or mac_text is None:
            log.debug("interface %s vanished or sysfs is not of this netns; skipped", name)
            continue
        try:
            flags = int(flags_text, 16)
            mac = mac_from_str(mac_text)
        except ValueError:  # FrameError is a ValueError
            mac, flags = b"", 0  # not Ethernet (e.g. tun, ip6tnl): never selected
        records.append(
            InterfaceRecord(
                name=name,
                index=index,
                flags=flags,
                mac=mac,
                has_master=os.path.exists(os.path.join(base, "master")),
                addresses=tuple(v6.get(name, ())),
            )
        )
    return records
