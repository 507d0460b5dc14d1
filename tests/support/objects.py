"""The MetalLB and Kubernetes objects the tests write into a state directory or a snapshot, one JSON document
each (JSON is YAML), and the snapshot a decision is computed from: one spelling of the pools, advertisements and
peers that the decision, allocation and interop tests all start from."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ironlb.config import load_texts
from ironlb.plan import Snapshot, snapshot_from

NAMESPACE = "metallb-system"


def _doc(api: str, kind: str, name: str, spec: dict[str, Any], **meta: Any) -> str:
    body = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE, **meta}, "spec": spec}
    return json.dumps(body) + "\n"


def pool_yaml(name: str, *addresses: str, **spec: Any) -> str:
    """An IPAddressPool of ``addresses`` (CIDRs or ranges)."""
    return _doc("metallb.io/v1beta1", "IPAddressPool", name, {"addresses": list(addresses), **spec})


def l2_advertisement_yaml(name: str, pools: Sequence[str], **spec: Any) -> str:
    """An L2Advertisement of ``pools`` (``interfaces``, ``nodeSelectors``... in ``spec``)."""
    return _doc("metallb.io/v1beta1", "L2Advertisement", name, {"ipAddressPools": list(pools), **spec})


def bgp_advertisement_yaml(
    name: str, pools: Sequence[str], *, annotations: dict[str, str] | None = None, **spec: Any
) -> str:
    """A BGPAdvertisement of ``pools`` (``communities``, ``aggregationLength``... in ``spec``)."""
    meta = {"annotations": annotations} if annotations else {}
    return _doc("metallb.io/v1beta1", "BGPAdvertisement", name, {"ipAddressPools": list(pools), **spec}, **meta)


def peer_yaml(name: str, my_asn: int, peer_asn: int, address: str, **spec: Any) -> str:
    """A BGPPeer (v1beta2) at ``address``."""
    body = {"myASN": my_asn, "peerASN": peer_asn, "peerAddress": address, **spec}
    return _doc("metallb.io/v1beta2", "BGPPeer", name, body)


def documents(*docs: str) -> str:
    """One multi-document YAML text."""
    return "---\n".join(d if d.endswith("\n") else d + "\n" for d in docs)


def snapshot_of(*texts: str) -> Snapshot:
    """The snapshot of ``texts`` (each a YAML file's text) under the configuration they build."""
    return snapshot_from(load_texts([(f"f{i}.yaml", t) for i, t in enumerate(texts)]))[0]


# The BGP side most decision tests share: a pool, one advertisement with a community, a top-of-rack peer.
BGP_POOL = pool_yaml("bgp", "10.50.0.0/24")
BGP_HOSTS = bgp_advertisement_yaml("hosts", ["bgp"], communities=["64512:100"])
# The pool advertised to every peer, as it is: what the interop tests announce.
BGP_ADVERTISED = documents(BGP_POOL, bgp_advertisement_yaml("hosts", ["bgp"]))
TOR = peer_yaml("tor", 64512, 64513, "10.0.0.1")
