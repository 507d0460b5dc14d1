"""The Link Bandwidth extended community (draft-ietf-idr-link-bandwidth): codec, UPDATEs, the planner's weights
by ready local endpoints, and ironlb's ``ironlb.io/link-bandwidth`` annotation on a BGPAdvertisement."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, ip_network

import pytest

from ironlb.bgp.attributes import Attributes
from ironlb.bgp.planner import (
    BYTES_PER_ENDPOINT,
    ServiceInput,
    advertisements,
    link_bandwidth_of,
    plan_node,
    ready_endpoints,
)
from ironlb.bgp.updates import PathContext, build_announcements
from ironlb.bgp.wire import UpdateMessage, decode_message
from ironlb.bgp.wire.extcommunity import (
    MAX_LINK_BANDWIDTH,
    decode_extended_communities,
    decode_link_bandwidth,
    encode_extended_communities,
    link_bandwidth,
)
from ironlb.cluster.objects import Endpoint, EndpointSlice, Node
from ironlb.config.types import Config, Peer
from tests.bgp.test_planner import ad, pool, service
from tests.config.helpers import config_of, error_of

N1 = Node("n1", {})


def test_link_bandwidth_encoding() -> None:
    value = link_bandwidth(64513, 125_000.0)
    raw = value.to_bytes(8, "big")
    assert raw[:4] == bytes((0x00, 0x04)) + struct.pack("!H", 64513)
    assert struct.unpack("!f", raw[4:])[0] == 125_000.0
    assert decode_link_bandwidth(value) == (64513, 125_000.0)
    # A 4-octet AS is carried as AS_TRANS; the non-transitive type decodes too.
    assert decode_link_bandwidth(link_bandwidth(4_200_000_000, 1.0)) == (23456, 1.0)
    assert decode_link_bandwidth(link_bandwidth(1, 8.0, transitive=False)) == (1, 8.0)
    assert decode_link_bandwidth(0x0002_0001_0000_0001) is None  # route target, not a bandwidth
    for bad in (-1.0, float("inf"), float("nan"), MAX_LINK_BANDWIDTH * 2):
        with pytest.raises(ValueError):
            link_bandwidth(1, bad)
    values = (value, 0x0002_0001_0000_0001)
    assert decode_extended_communities(encode_extended_communities(values)) == values


def test_update_carries_the_extended_community() -> None:
    ctx = PathContext(64513, False, True, IPv4Address("192.0.2.1"), None)
    routes = {ip_network("10.50.0.20/32"): Attributes(link_bandwidth=2 * BYTES_PER_ENDPOINT)}
    (raw,), failed = build_announcements(routes, ctx)
    msg = decode_message(raw)
    assert not failed and isinstance(msg, UpdateMessage)
    (community,) = msg.extended_communities
    assert decode_link_bandwidth(community) == (64513, 250_000.0)
    (plain,), _ = build_announcements({ip_network("10.50.0.20/32"): Attributes()}, ctx)
    plain_msg = decode_message(plain)
    assert isinstance(plain_msg, UpdateMessage) and plain_msg.extended_communities == ()


def test_merged_prefixes_add_their_bandwidths() -> None:
    a, b = Attributes(link_bandwidth=10), Attributes(link_bandwidth=5)
    assert a.merge(b).link_bandwidth == 15
    assert a.merge(Attributes()).link_bandwidth == 10 and Attributes().merge(Attributes()).link_bandwidth is None
    with pytest.raises(ValueError):
        Attributes(link_bandwidth=-1)


def slices(*eps: tuple[str, str, bool | None]) -> tuple[EndpointSlice, ...]:
    return (EndpointSlice("default", "web-x", "web", tuple(Endpoint((a,) if a else (), n, r, None) for a, n, r in eps)),)


def test_ready_local_endpoints_weigh_an_etp_local_service() -> None:
    eps = slices(("10.1.0.1", "n1", True), ("10.1.0.2", "n1", None), ("10.1.0.3", "n1", False),
                 ("", "n1", True), ("10.1.0.4", "n2", True))  # fmt: skip
    assert ready_endpoints(eps, "n1") == 2  # ready (or unknown) with an address; n2's does not count
    assert link_bandwidth_of(service(etp="Local"), eps, "n1") == 2 * BYTES_PER_ENDPOINT
    assert link_bandwidth_of(service(etp="Cluster"), eps, "n1") is None  # kube-proxy spreads it anyway
    weighted, plain = ad("w", weight_by_endpoints=True), ad("p")
    (w,) = advertisements(service(etp="Local"), pool(weighted), N1, eps)
    (p,) = advertisements(service(etp="Local"), pool(plain), N1, eps)
    (c,) = advertisements(service(etp="Cluster"), pool(weighted), N1, eps)
    assert w.attributes.link_bandwidth == 2 * BYTES_PER_ENDPOINT
    assert p.attributes.link_bandwidth is None and c.attributes.link_bandwidth is None


def annotated_ad(value: str) -> str:
    return f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: p}}
spec: {{addresses: ["10.0.0.0/24"]}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: w, annotations: {{ironlb.io/link-bandwidth: {value}}}}}
spec: {{ipAddressPools: [p]}}
"""


def test_annotation() -> None:
    (parsed,) = config_of(annotated_ad("ready-endpoints")).pools[0].bgp_advertisements
    assert parsed.weight_by_endpoints
    err = str(error_of(annotated_ad("pods")))
    assert 'invalid value "pods" for annotation ironlb.io/link-bandwidth' in err and 'BGPAdvertisement "w"' in err


def test_plan_shows_the_link_bandwidth_sent_to_the_peers() -> None:
    p = pool(ad("w", weight_by_endpoints=True))
    peer = Peer("r", 64513, 64512, "192.0.2.1")
    eps = slices(("10.1.0.1", "n1", True), ("10.1.0.2", "n1", True), ("10.1.0.3", "n1", True))
    plan = plan_node(Config(pools=(p,), peers=(peer,)), N1, {"default/web": ServiceInput(service(etp="Local"), p, eps)})
    (entry,) = plan.entries("default/web")
    assert entry["linkBandwidth"] == 3 * BYTES_PER_ENDPOINT and entry["peers"] == ["r"]
    q = pool(ad("p"))
    plain = plan_node(Config(pools=(q,), peers=(peer,)), N1, {"default/web": ServiceInput(service(etp="Local"), q, eps)})
    assert "linkBandwidth" not in plain.entries("default/web")[0]
