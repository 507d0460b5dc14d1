"""NLRI prefix encoding (RFC 4271 section 4.3, RFC 4760): the prefixes UPDATE and MP_(UN)REACH carry."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

from ironlb.bgp.errors import BGPError

from .common import AFI_IPV4, IPV4_UNICAST, IPV6_UNICAST, Family, Network


def family_of(net: Network) -> Family:
    """The (AFI, SAFI) a unicast prefix belongs to."""
    return IPV4_UNICAST if net.version == 4 else IPV6_UNICAST


def encode_prefix(net: Network) -> bytes:
    """NLRI encoding: length byte plus the minimal number of address bytes."""
    plen = net.prefixlen
    return bytes((plen,)) + net.network_address.packed[: (plen + 7) // 8]


def prefix_size(net: Network) -> int:
    """Encoded size of :func:`encode_prefix` without building it (for packing)."""
    return 1 + (net.prefixlen + 7) // 8


def decode_prefixes(data: bytes, afi: int, error: BGPError) -> tuple[Network, ...]:
    """Decode a run of NLRI prefixes; raise ``error`` on any inconsistency.

    Host bits beyond the prefix length are ignored (RFC 4271 says they are irrelevant).
    """
    width = 4 if afi == AFI_IPV4 else 16
    out: list[Network] = []
    i = 0
    n = len(data)
    while i < n:
        plen = data[i]
        i += 1
        if plen > width * 8:
            raise error
        nbytes = (plen + 7) // 8
        if i + nbytes > n:
            raise error
        raw = data[i : i + nbytes] + bytes(width - nbytes)
        i += nbytes
        if afi == AFI_IPV4:
            out.append(IPv4Network((int.from_bytes(raw, "big"), plen), strict=False))
        else:
            out.append(IPv6Network((int.from_bytes(raw, "big"), plen), strict=False))
    return tuple(out)
