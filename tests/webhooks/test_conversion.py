"""The BGPPeer conversion webhook as a pure function: v1beta1 <-> v1beta2 as MetalLB's conversion does."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ironlb.webhooks.conversion import V1BETA1, V1BETA2, V1BETA2_ONLY, ConversionError, convert_bgppeer, convert_review

META = {"name": "p", "namespace": "metallb-system", "uid": "1234", "resourceVersion": "7", "generation": 2,
        "labels": {"a": "b"}, "creationTimestamp": "2025-01-01T00:00:00Z"}
SELECTORS = [{"matchLabels": {"zone": "a"}, "matchExpressions": [{"key": "rack", "operator": "In", "values": ["1"]}]}]
V1 = {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "sourceAddress": "10.0.0.2", "peerPort": 1179,
      "holdTime": "90s", "keepaliveTime": "30s", "routerID": "10.0.0.2", "nodeSelectors": SELECTORS,
      "password": "pw", "bfdProfile": "b", "ebgpMultiHop": True}
V2_ONLY = {"dynamicASN": "external", "interface": "eth0", "passwordSecret": {"name": "s", "namespace": "x"},
           "connectTime": "10s", "vrf": "red", "enableGracefulRestart": True, "disableMP": False,
           "dualStackAddressFamily": True, "localASN": 65000}


def peer(version: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": version, "kind": "BGPPeer", "metadata": copy.deepcopy(META), "spec": copy.deepcopy(spec),
            "status": {}}


def test_v1beta1_to_v1beta2_keeps_everything() -> None:
    out = convert_bgppeer(peer(V1BETA1, V1), V1BETA2)
    assert out == peer(V1BETA2, V1)


def test_v1beta2_to_v1beta1_drops_what_v1beta1_lacks() -> None:
    src = peer(V1BETA2, {**V1, **V2_ONLY})
    out = convert_bgppeer(src, V1BETA1)
    assert out == peer(V1BETA1, V1)
    assert set(V2_ONLY) == set(V1BETA2_ONLY)
    assert src["spec"]["vrf"] == "red"  # the input is not changed


def test_round_trip_and_same_version() -> None:
    v1 = peer(V1BETA1, V1)
    assert convert_bgppeer(convert_bgppeer(v1, V1BETA2), V1BETA1) == v1
    assert convert_bgppeer(v1, V1BETA1) == v1


def test_selectors_keep_only_label_selector_fields() -> None:
    spec = {**V1, "nodeSelectors": [{"matchLabels": {"a": "b"}, "extra": 1,
                                     "matchExpressions": [{"key": "k", "operator": "Exists", "junk": 2}]}]}
    out = convert_bgppeer(peer(V1BETA2, spec), V1BETA1)
    assert out["spec"]["nodeSelectors"] == [{"matchLabels": {"a": "b"},
                                             "matchExpressions": [{"key": "k", "operator": "Exists"}]}]


@pytest.mark.parametrize(("o", "version", "message"), [
    ({"apiVersion": V1BETA1, "kind": "IPAddressPool"}, V1BETA2, "only BGPPeer"),
    ({"apiVersion": "metallb.io/v1", "kind": "BGPPeer"}, V1BETA2, "unknown apiVersion"),
    ({"apiVersion": V1BETA1, "kind": "BGPPeer"}, "metallb.io/v9", "unknown apiVersion"),
])
def test_refusals(o: dict[str, Any], version: str, message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        convert_bgppeer(o, version)


def test_review() -> None:
    req = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
           "request": {"uid": "u-1", "desiredAPIVersion": V1BETA1,
                       "objects": [peer(V1BETA2, {**V1, **V2_ONLY}), peer(V1BETA2, V1)]}}
    out = convert_review(req)
    assert out["apiVersion"] == "apiextensions.k8s.io/v1" and out["kind"] == "ConversionReview"
    assert out["response"]["uid"] == "u-1"
    assert out["response"]["result"] == {"status": "Success"}
    assert out["response"]["convertedObjects"] == [peer(V1BETA1, V1), peer(V1BETA1, V1)]


def test_review_failure() -> None:
    req = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
           "request": {"uid": "u-2", "desiredAPIVersion": V1BETA1,
                       "objects": [{"apiVersion": V1BETA2, "kind": "Other"}]}}
    out = convert_review(req)
    assert out["response"]["result"]["status"] == "Failure"
    assert "only BGPPeer" in out["response"]["result"]["message"]
    assert out["response"]["convertedObjects"] == []
    assert convert_review({"kind": "Nope"})["response"]["result"]["status"] == "Failure"
