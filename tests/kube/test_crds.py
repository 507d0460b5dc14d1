"""ironlb's metallb.io CRDs (config/crd) on a real apiserver: every kind accepts a valid object, the defaults are
MetalLB's, and the schema and CEL validation MetalLB's CRDs carry rejects invalid ones with MetalLB's messages."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.controlplane import CRD_DIR, REPO, ControlPlane, KubeError

pytestmark = pytest.mark.kube

KINDS = {
    "IPAddressPool": ("v1beta1", "ipaddresspools"),
    "L2Advertisement": ("v1beta1", "l2advertisements"),
    "BGPAdvertisement": ("v1beta1", "bgpadvertisements"),
    "BGPPeer": ("v1beta2", "bgppeers"),
    "BFDProfile": ("v1beta1", "bfdprofiles"),
    "Community": ("v1beta1", "communities"),
    "ServiceL2Status": ("v1beta1", "servicel2statuses"),
    "ServiceBGPStatus": ("v1beta1", "servicebgpstatuses"),
    "ConfigurationState": ("v1beta1", "configurationstates"),
}

SELECTOR = {"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}

VALID: dict[str, dict[str, Any]] = {
    "IPAddressPool": {"spec": {
        "addresses": ["192.168.10.0/24", "192.168.9.1-192.168.9.5", "fc00:f853:0ccd:e799::/124"],
        "serviceAllocation": {"priority": 50, "namespaces": ["ns-a"], "namespaceSelectors": [SELECTOR],
                              "serviceSelectors": [SELECTOR]},
    }},
    "L2Advertisement": {"spec": {
        "ipAddressPools": ["p1"], "ipAddressPoolSelectors": [SELECTOR], "nodeSelectors": [SELECTOR],
        "interfaces": ["eth0"], "serviceSelectors": [SELECTOR],
        "preferredNodeSelectors": [{"weight": 100, "preference": SELECTOR}],
    }},
    "BGPAdvertisement": {"spec": {
        "aggregationLength": 24, "aggregationLengthV6": 64, "localPref": 4294967295,
        "communities": ["65535:65282", "large:1:2:3", "alias"], "ipAddressPools": ["p1"],
        "ipAddressPoolSelectors": [SELECTOR], "nodeSelectors": [SELECTOR], "peers": ["peer1"],
    }},
    "BGPPeer": {"spec": {
        "myASN": 4294967295, "peerASN": 64501, "peerAddress": "10.0.0.1", "sourceAddress": "10.0.0.2",
        "peerPort": 1179, "holdTime": "90s", "keepaliveTime": "30s", "connectTime": "10s", "routerID": "10.0.0.2",
        "nodeSelectors": [SELECTOR], "passwordSecret": {"name": "s", "namespace": "metallb-system"},
        "bfdProfile": "b", "enableGracefulRestart": True, "ebgpMultiHop": True, "vrf": "red",
        "dualStackAddressFamily": True,
    }},
    "BFDProfile": {"spec": {
        "receiveInterval": 10, "transmitInterval": 60000, "detectMultiplier": 255, "echoInterval": 50,
        "echoMode": True, "passiveMode": True, "minimumTtl": 254,
    }},
    "Community": {"spec": {"communities": [{"name": "alias", "value": "65535:65282"},
                                           {"name": "big", "value": "large:1:2:3"}]}},
    "ServiceL2Status": {},
    "ServiceBGPStatus": {},
    "ConfigurationState": {},
}


def _path(kind: str, namespace: str, name: str = "", version: str | None = None) -> str:
    v, plural = KINDS[kind]
    p = f"/apis/metallb.io/{version or v}/namespaces/{namespace}/{plural}"
    return f"{p}/{name}" if name else p


def _obj(kind: str, name: str, body: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    return {"apiVersion": f"metallb.io/{version or KINDS[kind][0]}", "kind": kind, "metadata": {"name": name},
            **copy.deepcopy(body)}


def _rejected(cp: ControlPlane, kind: str, namespace: str, body: dict[str, Any], version: str | None = None) -> str:
    with pytest.raises(KubeError) as e:
        cp.create(_path(kind, namespace, version=version), _obj(kind, "bad", body, version))
    assert e.value.status == 422, e.value
    return str(e.value.body["message"])


def test_every_kind_is_installed(control_plane: ControlPlane) -> None:
    files = sorted(p.name for p in CRD_DIR.glob("metallb.io_*.yaml"))
    assert len(files) == len(KINDS)
    crds = control_plane.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
    by_kind = {c["spec"]["names"]["kind"]: c for c in crds if c["spec"]["group"] == "metallb.io"}
    assert set(by_kind) == set(KINDS)
    for kind, (storage, _) in KINDS.items():
        crd = by_kind[kind]
        assert crd["spec"]["scope"] == "Namespaced"
        assert [v["name"] for v in crd["spec"]["versions"] if v["storage"]] == [storage]
        assert all(v.get("subresources", {}).get("status") == {} for v in crd["spec"]["versions"])


@pytest.mark.parametrize("kind", list(KINDS))
def test_valid_object_of_each_kind_is_accepted(control_plane: ControlPlane, namespace: str, kind: str) -> None:
    got = control_plane.create(_path(kind, namespace), _obj(kind, "ok", VALID[kind]))
    assert got["kind"] == kind
    back = control_plane.get(_path(kind, namespace, "ok"))
    for key, value in VALID[kind].get("spec", {}).items():
        assert back["spec"][key] == value, key


def test_defaults(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    pool = cp.create(_path("IPAddressPool", namespace), _obj("IPAddressPool", "p", {"spec": {"addresses": ["10.0.0.0/30"]}}))
    assert (pool["spec"]["autoAssign"], pool["spec"]["avoidBuggyIPs"]) == (True, False)
    adv = cp.create(_path("BGPAdvertisement", namespace), _obj("BGPAdvertisement", "a", {"spec": {}}))
    assert (adv["spec"]["aggregationLength"], adv["spec"]["aggregationLengthV6"]) == (32, 128)
    peer = cp.create(_path("BGPPeer", namespace), _obj("BGPPeer", "p", {"spec": {"myASN": 64500, "peerASN": 64501,
                                                                                 "peerAddress": "10.0.0.1"}}))
    assert peer["spec"]["peerPort"] == 179
    assert (peer["spec"]["disableMP"], peer["spec"]["dualStackAddressFamily"]) == (False, False)


def test_the_examples_are_accepted(control_plane: ControlPlane) -> None:
    cp = control_plane
    ns = "metallb-system"
    if cp.request("GET", f"/api/v1/namespaces/{ns}", raw=True).status == 404:
        cp.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for doc in yaml.safe_load_all((REPO / "examples" / "crds.yaml").read_text()):
        version = doc["apiVersion"].split("/")[1]
        name = doc["metadata"]["name"]
        cp.request("DELETE", _path(doc["kind"], ns, name, version), raw=True)
        cp.create(_path(doc["kind"], ns, version=version), doc)


@pytest.mark.parametrize(("kind", "body", "message"), [
    ("IPAddressPool", {"spec": {}}, "spec.addresses: Required value"),
    ("IPAddressPool", {}, "spec: Required value"),
    ("IPAddressPool", {"spec": {"addresses": "10.0.0.0/24"}}, 'spec.addresses: Invalid value: "string"'),
    ("L2Advertisement", {"spec": {"preferredNodeSelectors": [{"weight": 101, "preference": {}}]}},
     "should be less than or equal to 100"),
    ("L2Advertisement", {"spec": {"preferredNodeSelectors": [{"weight": 0, "preference": {}}]}},
     "should be greater than or equal to 1"),
    ("L2Advertisement", {"spec": {"preferredNodeSelectors": [{"weight": 5}]}},
     "spec.preferredNodeSelectors[0].preference: Required value"),
    ("BGPAdvertisement", {"spec": {"aggregationLength": 0}}, "should be greater than or equal to 1"),
    ("BGPAdvertisement", {"spec": {"aggregationLength": 24, "serviceSelectors": [SELECTOR]}},
     "serviceSelectors and aggregationLength are mutually exclusive, can only be used together with default "
     "aggregationLength (32) and aggregationLengthV6 (128)"),
    ("BGPAdvertisement", {"spec": {"aggregationLengthV6": 64, "serviceSelectors": [SELECTOR]}},
     "serviceSelectors and aggregationLength are mutually exclusive"),
    ("BGPAdvertisement", {"spec": {"localPref": 4294967296}}, "should be less than or equal to 4294967295"),
    ("BGPPeer", {"spec": {"peerASN": 1}}, "spec.myASN: Required value"),
    ("BGPPeer", {"spec": {"myASN": 4294967296}}, "should be less than or equal to 4294967295"),
    ("BGPPeer", {"spec": {"myASN": 1, "dynamicASN": "both"}}, 'supported values: "internal", "external"'),
    ("BGPPeer", {"spec": {"myASN": 1, "localASN": 0}}, "should be greater than or equal to 1"),
    ("BGPPeer", {"spec": {"myASN": 1, "peerPort": 16385}}, "should be less than or equal to 16384"),
    ("BGPPeer", {"spec": {"myASN": 1, "connectTime": "1500ms"}},
     "connect time should contain a whole number of seconds"),
    ("BGPPeer", {"spec": {"myASN": 1, "connectTime": "500ms"}}, "connect time should be between 1 seconds to 65535"),
    ("BGPPeer", {"spec": {"myASN": 1, "connectTime": "65536s"}}, "connect time should be between 1 seconds to 65535"),
    ("BFDProfile", {"spec": {"receiveInterval": 9}}, "should be greater than or equal to 10"),
    ("BFDProfile", {"spec": {"transmitInterval": 60001}}, "should be less than or equal to 60000"),
    ("BFDProfile", {"spec": {"detectMultiplier": 1}}, "should be greater than or equal to 2"),
    ("BFDProfile", {"spec": {"minimumTtl": 255}}, "should be less than or equal to 254"),
])
def test_invalid_objects_are_rejected(control_plane: ControlPlane, namespace: str, kind: str, body: dict[str, Any],
                                      message: str) -> None:
    assert message in _rejected(control_plane, kind, namespace, body)


def test_connect_time_bounds_are_accepted(control_plane: ControlPlane, namespace: str) -> None:
    for i, ct in enumerate(["1s", "65535s", "2m"]):
        control_plane.create(_path("BGPPeer", namespace), _obj("BGPPeer", f"c{i}", {"spec": {"myASN": 1, "connectTime": ct}}))


def test_graceful_restart_is_immutable(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    cp.create(_path("BGPPeer", namespace), _obj("BGPPeer", "gr", {"spec": {"myASN": 1, "enableGracefulRestart": False}}))
    cp.patch(_path("BGPPeer", namespace, "gr"), {"spec": {"peerASN": 2}})  # other fields may change
    with pytest.raises(KubeError) as e:
        cp.patch(_path("BGPPeer", namespace, "gr"), {"spec": {"enableGracefulRestart": True}})
    assert e.value.status == 422
    assert "EnableGracefulRestart cannot be changed after creation" in e.value.body["message"]


def test_status_fields_of_announcement_statuses_are_immutable(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    for kind in ("ServiceL2Status", "ServiceBGPStatus"):
        cp.create(_path(kind, namespace), _obj(kind, "s", {}))
        status: dict[str, Any] = {"node": "n1", "serviceName": "web", "serviceNamespace": "default"}
        if kind == "ServiceBGPStatus":
            status["peers"] = ["peer1"]
        else:
            status["interfaces"] = [{"name": "eth0"}]
        got = cp.patch(_path(kind, namespace, "s") + "/status", {"status": status})
        assert got["status"] == status
        with pytest.raises(KubeError) as e:
            cp.patch(_path(kind, namespace, "s") + "/status", {"status": {"node": "n2"}})
        assert "Value is immutable" in e.value.body["message"]


def test_pool_status_and_configuration_state(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    cp.create(_path("IPAddressPool", namespace), _obj("IPAddressPool", "st", {"spec": {"addresses": ["10.0.0.0/30"]}}))
    counts = {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 3, "availableIPv6": 9223372036854775807}
    assert cp.patch(_path("IPAddressPool", namespace, "st") + "/status", {"status": counts})["status"] == counts
    # status on the main resource is ignored (status subresource)
    cp.patch(_path("IPAddressPool", namespace, "st"), {"status": {**counts, "assignedIPv4": 2}})
    assert cp.get(_path("IPAddressPool", namespace, "st"))["status"] == counts
    with pytest.raises(KubeError):
        cp.patch(_path("IPAddressPool", namespace, "st") + "/status", {"status": {"assignedIPv4": None}})

    # ConfigurationState: each reconciler server-side-applies its own condition (list map keyed by type).
    cp.create(_path("ConfigurationState", namespace), _obj("ConfigurationState", "controller", {}))
    path = _path("ConfigurationState", namespace, "controller") + "/status"

    def condition(ctype: str, status: str, reason: str) -> dict[str, Any]:
        return {"apiVersion": "metallb.io/v1beta1", "kind": "ConfigurationState",
                "metadata": {"name": "controller", "namespace": namespace},
                "status": {"conditions": [{"type": ctype, "status": status, "reason": reason, "message": "",
                                           "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}

    cp.apply(path, condition("poolReconcilerValid", "True", "Reconciled"), field_manager="poolReconciler")
    got = cp.apply(path, condition("otherValid", "False", "ConfigurationError"), field_manager="other")
    assert [c["type"] for c in got["status"]["conditions"]] == ["poolReconcilerValid", "otherValid"]
    with pytest.raises(KubeError) as e:
        cp.apply(path, condition("poolReconcilerValid", "True", "not a reason!"), field_manager="poolReconciler")
    assert e.value.status == 422


def test_bgppeer_v1beta1_is_served_deprecated_and_shares_storage(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    v1 = {"spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "holdTime": "9s",
                   "nodeSelectors": [{"matchLabels": {"a": "b"},
                                      "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}]}}
    resp = cp.request("POST", _path("BGPPeer", namespace, version="v1beta1"), _obj("BGPPeer", "old", v1, "v1beta1"))
    assert any("v1beta1 is deprecated, please use v1beta2" in w for w in resp.warnings)
    # Read at v1beta2 (the storage version): the same fields, plus v1beta2's defaults.
    got = cp.get(_path("BGPPeer", namespace, "old", "v1beta2"))
    assert got["apiVersion"] == "metallb.io/v1beta2"
    assert got["spec"]["nodeSelectors"] == v1["spec"]["nodeSelectors"]
    assert got["spec"]["holdTime"] == "9s"
    # v1beta1 keeps its own validation: peerAddress and peerASN are required, values needs an item.
    assert "spec.peerAddress: Required value" in _rejected(
        cp, "BGPPeer", namespace, {"spec": {"myASN": 1, "peerASN": 2}}, "v1beta1")
    assert "spec.nodeSelectors[0].matchExpressions[0].values: Invalid value: 0" in _rejected(
        cp, "BGPPeer", namespace, {"spec": {"myASN": 1, "peerASN": 2, "peerAddress": "a", "nodeSelectors": [
            {"matchExpressions": [{"key": "k", "operator": "Exists", "values": []}]}]}}, "v1beta1")
    # A v1beta2 object read at v1beta1 loses the fields v1beta1 does not have (pruned), as with MetalLB's webhook.
    cp.create(_path("BGPPeer", namespace), _obj("BGPPeer", "new", {"spec": {
        "myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.2", "vrf": "red"}}))
    old_view = cp.get(_path("BGPPeer", namespace, "new", "v1beta1"))
    assert "vrf" not in old_view["spec"] and old_view["spec"]["peerAddress"] == "10.0.0.2"
    assert cp.get(_path("BGPPeer", namespace, "new"))["spec"]["vrf"] == "red"


def test_crd_files_are_plain_yaml() -> None:
    for f in CRD_DIR.glob("*.yaml"):
        docs = list(yaml.safe_load_all(Path(f).read_text()))
        assert len(docs) == 1, f
