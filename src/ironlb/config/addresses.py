"""Pool address parsing, as MetalLB's ``config.ParseCIDR`` does it.

An entry is a CIDR (host bits allowed: ``1.2.3.4/24`` is ``1.2.3.0/24``) or a ``start-end`` range
(split on the first ``-``, spaces trimmed) summarised into the minimal list of CIDRs. A bare IP is not
a CIDR. Error texts are MetalLB's, because users and tests match on them.
"""

from __future__ import annotations

import ipaddress

from ironlb.config.errors import goq
from ironlb.config.types import IPAddress, IPNetwork


class AddressError(ValueError):
    pass


def parse_ip(text: str) -> IPAddress | None:
    """Go's ``net.ParseIP``: a plain IPv4 or IPv6 address, no zone, no prefix; None if invalid."""
    if not text or "%" in text or "/" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_cidr(entry: str) -> list[IPNetwork]:
    """Parse one ``spec.addresses`` entry into CIDRs; raise AddressError with MetalLB's message."""
    if "-" not in entry:
        addr, sep, plen = entry.partition("/")
        ip = parse_ip(addr) if sep else None
        if ip is None or not plen.isdigit() or (len(plen) > 1 and plen[0] == "0"):
            raise AddressError(f"invalid CIDR {goq(entry)}")
        try:
            return [ipaddress.ip_network((ip, int(plen)), strict=False)]  # the address is parsed once
        except ValueError:
            raise AddressError(f"invalid CIDR {goq(entry)}") from None
    first, _, second = entry.partition("-")
    start = parse_ip(first.strip())
    if start is None:
        raise AddressError(f"invalid IP range {goq(entry)}: invalid start IP {goq(first)}")
    end = parse_ip(second.strip())
    if end is None:
        raise AddressError(f"invalid IP range {goq(entry)}: invalid end IP {goq(second)}")
    if start.version != end.version:
        # Go compares the 16-byte forms and then summarises nothing; ironlb says why instead.
        raise AddressError(
            f"invalid IP range {goq(entry)}: start IP {goq(start)} and end IP {goq(end)} are of different families"
        )
    if int(start) > int(end):
        raise AddressError(f"invalid IP range {goq(entry)}: start IP {goq(start)} is after the end IP {goq(end)}")
    return list(ipaddress.summarize_address_range(start, end))


def cidrs_overlap(a: IPNetwork, b: IPNetwork) -> bool:
    """Whether one CIDR contains the other (MetalLB's cidrsOverlap); never across families."""
    return a.version == b.version and a.overlaps(b)


def lowest_mask(cidrs: list[IPNetwork]) -> int:
    """The least specific prefix length among ``cidrs`` (for the aggregation-length check)."""
    return min(c.prefixlen for c in cidrs) if cidrs else 0
