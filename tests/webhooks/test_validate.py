"""The validating webhooks as a pure function: every MetalLB rule of reference section 2 that a webhook can reach
is rejected with MetalLB's message, valid objects are accepted, and the objects are validated together with the
kinds MetalLB validates them with (pools alone, L2 ads + pools, BGP ads + pools + nodes, peers + nodes,
communities alone, BFD profiles on create and delete)."""

from __future__ import annotations

from typing import Any

import pytest

from ironlb.webhooks.validate import (
    DISABLE_MP_WARNING,
    PATHS,
    VALIDATED_WITH,
    WEBHOOKS,
    kinds_to_list,
    reset_transient,
    review,
)

from .helpers import NS, admission, node, obj, pool

Existing = dict[str, list[dict[str, Any]]]


def answer(op: str, new: dict[str, Any] | None, existing: Existing | None = None,
           old: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = admission(op, new, old)
    out = review(doc, existing or {}, namespace=NS)
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == doc["request"]["uid"]
    return dict(out["response"])


def denied(op: str, new: dict[str, Any] | None, existing: Existing | None = None,
           old: dict[str, Any] | None = None) -> str:
    resp = answer(op, new, existing, old)
    assert resp["allowed"] is False, resp
    assert resp["status"]["code"] == 403 and resp["status"]["reason"] == "Forbidden"
    return str(resp["status"]["message"])


def allowed(op: str, new: dict[str, Any] | None, existing: Existing | None = None,
            old: dict[str, Any] | None = None) -> list[str]:
    resp = answer(op, new, existing, old)
    assert resp["allowed"] is True, resp
    return list(resp.get("warnings", []))


# ---------------------------------------------------------------------------------------------- the tables
def test_paths_and_operations_are_metallbs() -> None:
    assert set(PATHS) == {
        "/validate-metallb-io-v1beta1-ipaddresspool", "/validate-metallb-io-v1beta2-bgppeer",
        "/validate-metallb-io-v1beta1-bgpadvertisement", "/validate-metallb-io-v1beta1-l2advertisement",
        "/validate-metallb-io-v1beta1-community", "/validate-metallb-io-v1beta1-bfdprofile",
    }
    for path, (kind, version) in PATHS.items():
        assert path == f"/validate-metallb-io-{version}-{kind.lower()}"
        assert WEBHOOKS[kind][2] == (("CREATE", "DELETE") if kind == "BFDProfile" else ("CREATE", "UPDATE"))


def test_kinds_validated_together() -> None:
    assert kinds_to_list("IPAddressPool", "CREATE") == ("IPAddressPool",)
    assert kinds_to_list("L2Advertisement", "UPDATE") == ("L2Advertisement", "IPAddressPool")
    assert kinds_to_list("BGPAdvertisement", "CREATE") == ("BGPAdvertisement", "IPAddressPool", "Node")
    assert kinds_to_list("BGPPeer", "CREATE") == ("BGPPeer", "Node")
    assert kinds_to_list("Community", "CREATE") == ("Community",)
    assert kinds_to_list("BFDProfile", "CREATE") == ("BFDProfile",)
    assert kinds_to_list("BFDProfile", "DELETE") == ("BGPPeer",)
    assert kinds_to_list("IPAddressPool", "DELETE") == ()
    assert set(VALIDATED_WITH) == {k for k, _ in PATHS.values()}


# ---------------------------------------------------------------------------------------------- namespace
@pytest.mark.parametrize("kind", sorted(VALIDATED_WITH))
def test_create_outside_the_namespace_is_denied(kind: str) -> None:
    o = obj(kind, "x", {}, ns="default")
    assert denied("CREATE", o) == "resource must be created in metallb-system namespace"


def test_update_outside_the_namespace_is_left_alone() -> None:
    """Such objects are not ironlb's configuration: they may only be fixed or cleaned up (e.g. a finalizer)."""
    bad = pool("p", "not-a-cidr", ns="default")
    assert allowed("UPDATE", bad, old=pool("p", "10.0.0.0/24", ns="default")) == []


# ---------------------------------------------------------------------------------------------- IPAddressPool
@pytest.mark.parametrize(("addresses", "message"), [
    (["foo"], 'parsing address pool p: invalid CIDR "foo" in pool "p"'),
    (["10.0.0.1"], 'invalid CIDR "10.0.0.1" in pool "p"'),
    (["1.1.1.5-1.1.1.1"], 'invalid IP range "1.1.1.5-1.1.1.1": start IP "1.1.1.5" is after the end IP "1.1.1.1"'),
    (["1.1.1.x-1.1.1.9"], 'invalid IP range "1.1.1.x-1.1.1.9": invalid start IP "1.1.1.x"'),
    (["1.1.1.1-1.1.1.y"], 'invalid IP range "1.1.1.1-1.1.1.y": invalid end IP "1.1.1.y"'),
    (["10.0.0.0/24", "10.0.0.128/25"], 'CIDR "10.0.0.128/25" in pool "p" overlaps with already defined CIDR '
                                      '"10.0.0.0/24"'),
    ([], "pool has no prefixes defined"),
])
def test_pool_rules(addresses: list[str], message: str) -> None:
    assert message in denied("CREATE", pool("p", *addresses))


def test_pool_overlapping_an_existing_pool() -> None:
    existing = {"IPAddressPool": [pool("b", "10.0.0.5/32")]}
    msg = denied("CREATE", pool("a", "10.0.0.0/24"), existing)
    assert 'CIDR "10.0.0.5/32" in pool "b" overlaps with already defined CIDR "10.0.0.0/24"' in msg
    assert allowed("CREATE", pool("a", "10.0.1.0/24"), existing) == []


def test_pool_service_allocation_duplicates() -> None:
    sel = {"matchLabels": {"a": "b"}}
    msg = denied("CREATE", pool("p", "10.0.0.0/24", serviceAllocation={"namespaces": ["x", "x"]}))
    assert "duplicate definition in namespaces field" in msg
    msg = denied("CREATE", pool("p", "10.0.0.0/24", serviceAllocation={"namespaceSelectors": [sel, sel]}))
    assert 'duplicate definition of namespaceSelectors {map["a":"b"] []}' in msg
    msg = denied("CREATE", pool("p", "10.0.0.0/24", serviceAllocation={"serviceSelectors": [sel, sel]}))
    assert 'duplicate definition of serviceSelectors {map["a":"b"] []}' in msg


def test_pool_update_replaces_the_stored_version() -> None:
    """The stored object is replaced, not kept beside the new one (it would overlap itself)."""
    old = pool("p", "10.0.0.0/24")
    existing = {"IPAddressPool": [old, pool("q", "10.0.1.0/24")]}
    msg = denied("UPDATE", pool("p", "10.0.0.0/23"), existing, old)
    assert 'overlaps with already defined CIDR "10.0.0.0/23"' in msg
    assert allowed("UPDATE", pool("p", "10.0.0.0/25"), existing, old) == []


def test_update_without_a_spec_change_is_allowed() -> None:
    existing = {"IPAddressPool": [pool("p", "10.0.0.0/24"), pool("q", "10.0.0.0/24")]}  # already broken
    labelled = pool("p", "10.0.0.0/24")
    labelled["metadata"]["labels"] = {"x": "y"}
    assert allowed("UPDATE", labelled, existing, pool("p", "10.0.0.0/24")) == []


def test_problems_the_cluster_already_had_do_not_deny_unrelated_changes() -> None:
    """ironlb differs from MetalLB here on purpose: an object that got in while the webhook was down does not
    block every other change of its kind; its problem comes back as a warning."""
    existing = {"IPAddressPool": [pool("a", "10.0.0.0/24"), pool("b", "10.0.0.0/25")]}
    warnings = allowed("CREATE", pool("c", "10.9.0.0/24"), existing)
    assert len(warnings) == 1
    assert warnings[0].startswith("the existing configuration is already invalid: ")
    assert "overlaps with already defined CIDR" in warnings[0]
    # a new problem still denies, and names only the new problem
    msg = denied("CREATE", pool("c", "10.0.0.128/32"), existing)
    assert msg == ('IPAddressPool "c": spec.addresses[0] "10.0.0.128/32": CIDR "10.0.0.128/32" in pool "c" overlaps '
                   'with already defined CIDR "10.0.0.0/24"')


# ---------------------------------------------------------------------------------------------- L2Advertisement
def test_l2_advertisement_rules() -> None:
    sel = {"matchLabels": {"a": "b"}}
    pools = {"IPAddressPool": [pool("p", "10.0.0.0/24")]}
    assert allowed("CREATE", obj("L2Advertisement", "l2", {"ipAddressPools": ["p"]}), pools) == []
    assert 'duplicate definition of ipAddressPools "p"' in denied(
        "CREATE", obj("L2Advertisement", "l2", {"ipAddressPools": ["p", "p"]}), pools)
    for fld in ("ipAddressPoolSelectors", "nodeSelectors", "serviceSelectors"):
        msg = denied("CREATE", obj("L2Advertisement", "l2", {fld: [sel, sel]}), pools)
        assert f'duplicate definition of {fld} {{map["a":"b"] []}}' in msg
    msg = denied("CREATE", obj("L2Advertisement", "l2", {"nodeSelectors": [
        {"matchExpressions": [{"key": "k", "operator": "In", "values": ["v", "v"]}]}]}), pools)
    assert "duplicate definition of match expression value in label selector" in msg


def test_l2_advertisement_naming_an_unknown_pool_warns() -> None:
    warnings = allowed("CREATE", obj("L2Advertisement", "l2", {"ipAddressPools": ["nope"]}),
                       {"IPAddressPool": [pool("p", "10.0.0.0/24")]})
    assert warnings == ['L2Advertisement "l2": spec.ipAddressPools[0]: no valid IPAddressPool named "nope"; '
                        "ignored, as MetalLB does"]


# ---------------------------------------------------------------------------------------------- BGPAdvertisement
def test_bgp_aggregation_length_against_the_pools() -> None:
    """MetalLB's e2e message, reached because BGP advertisements are validated with the pools."""
    pools = {"IPAddressPool": [pool("p", "1.1.1.0/28")]}
    msg = denied("CREATE", obj("BGPAdvertisement", "ad", {"aggregationLength": 26}), pools)
    assert ("invalid aggregation length 26: prefix 28 in this pool is more specific than the aggregation length "
            "for addresses 1.1.1.0/28") in msg
    assert allowed("CREATE", obj("BGPAdvertisement", "ad", {"aggregationLength": 26})) == []  # no pool yet
    assert allowed("CREATE", obj("BGPAdvertisement", "ad", {"aggregationLength": 28}), pools) == []


@pytest.mark.parametrize(("spec", "message"), [
    ({"aggregationLength": 33}, "invalid aggregation length 33 for IPv4"),
    ({"aggregationLengthV6": 129}, "invalid aggregation length 129 for IPv6"),
    ({"communities": ["65535:99999"]}, 'invalid community value: invalid section "99999" of community '
                                       '"65535:99999"'),
    ({"communities": ["large:1:2"]}, 'invalid community format: large:1:2; invalid community "large:1:2" in BGP'),
    ({"communities": ["1:1", "1:1"]}, 'duplicate definition of community "1:1"'),
    ({"peers": ["a", "a"]}, 'duplicate definition of peers "a"'),
    ({"ipAddressPools": ["p", "p"]}, 'duplicate definition of ipAddressPools "p"'),
    ({"serviceSelectors": [{"matchLabels": {"a": "b"}}], "aggregationLength": 24},
     "serviceSelectors and aggregationLength are mutually exclusive, both cannot be set in ad"),
    ({"serviceSelectors": [{"matchLabels": {"a": "b"}}], "aggregationLengthV6": 64},
     "serviceSelectors and aggregationLengthV6 are mutually exclusive, both cannot be set in ad"),
])
def test_bgp_advertisement_rules(spec: dict[str, Any], message: str) -> None:
    assert message in denied("CREATE", obj("BGPAdvertisement", "ad", spec))


def test_bgp_community_aliases_are_transient() -> None:
    """resetTransientErrorsFields: a community without ':' is an alias that may be defined later."""
    assert allowed("CREATE", obj("BGPAdvertisement", "ad", {"communities": ["not-yet-defined", "1:2"]})) == []


def test_bgp_local_pref_conflict_uses_pools_and_nodes() -> None:
    pools = {"IPAddressPool": [pool("p", "10.0.0.0/24")]}
    first = obj("BGPAdvertisement", "a1", {"localPref": 100, "nodeSelectors": [{"matchLabels": {"r": "1"}}]})
    second = obj("BGPAdvertisement", "a2", {"localPref": 200, "nodeSelectors": [{"matchLabels": {"z": "1"}}]})
    existing = {**pools, "BGPAdvertisement": [first]}
    # without Nodes, MetalLB's BGPAdvertisement.Nodes sets are empty: no common node, no conflict
    # (BGPAdvertisementsHaveCompatibleLocalPref)
    assert allowed("CREATE", second, existing) == []
    # the Nodes say no node matches both: no conflict
    nodes = {"Node": [node("n1", r="1"), node("n2", z="1")]}
    assert allowed("CREATE", second, {**existing, **nodes}) == []
    nodes = {"Node": [node("n1", r="1", z="1")]}
    msg = denied("CREATE", second, {**existing, **nodes})
    assert "invalid local preference 200: local preferernce 100 was already set for the same type of BGP update" in msg


# ---------------------------------------------------------------------------------------------- BGPPeer
PEER = {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"}


@pytest.mark.parametrize(("spec", "message"), [
    ({"peerAddress": "10.0.0.300"}, 'invalid BGPPeer address "10.0.0.300"'),
    ({"myASN": 0}, "missing local ASN"),
    ({"peerASN": 0}, "missing peer ASN and dynamicASN"),
    ({"dynamicASN": "external"}, "both peer ASN and dynamicASN specified"),
    ({"peerASN": 0, "dynamicASN": "outer"}, "invalid dynamicASN outer"),
    ({"peerASN": 64500, "ebgpMultiHop": True}, "invalid ebgp-multihop parameter set for an ibgp peer"),
    ({"peerAddress": ""}, "peer has no Address or Interface specified"),
    ({"holdTime": "2s"}, 'invalid hold time "2s": must be 0 or >=3s'),
    ({"holdTime": "30s", "keepaliveTime": "60s"}, 'invalid keepaliveTime "1m0s", must be lower than holdTime "30s"'),
    ({"routerID": "nope"}, 'invalid router ID "nope"'),
    ({"sourceAddress": "nope"}, 'invalid source IP "nope"'),
    ({"connectTime": "0s"}, "connect time should be between 1 seconds to 65535"),
    ({"connectTime": "1500ms"}, "connect time should contain a whole number of seconds"),
    ({"nodeSelectors": [{"matchLabels": {"a": "b"}}, {"matchLabels": {"a": "b"}}]},
     'duplicate definition of nodeSelectors {map["a":"b"] []}'),
    ({"vrf": "red"}, "VRF is not supported by ironlb"),
    ({"peerASN": 64500, "localASN": 65000}, "localASN is allowed only for eBGP peers"),
    ({"localASN": 64501}, "localASN equals peerASN 64501"),
])
def test_peer_rules(spec: dict[str, Any], message: str) -> None:
    msg = denied("CREATE", obj("BGPPeer", "peer1", {**PEER, **spec}))
    assert message in msg
    assert 'BGPPeer "peer1"' in msg


def test_peer_local_asn_allowed_on_an_ebgp_peer() -> None:
    assert allowed("CREATE", obj("BGPPeer", "peer1", {**PEER, "localASN": 65000})) == []


def test_peer_transient_references_are_ignored() -> None:
    """A BFD profile or password Secret that does not exist (yet) never makes the webhook refuse a peer."""
    spec = {**PEER, "bfdProfile": "later", "passwordSecret": {"name": "later", "namespace": NS}}
    assert allowed("CREATE", obj("BGPPeer", "peer1", spec)) == []


def test_peer_disable_mp_warns_and_skips_the_rest_on_create() -> None:
    """MetalLB returns the deprecation warning before any other create check."""
    assert allowed("CREATE", obj("BGPPeer", "p", {**PEER, "disableMP": True})) == [DISABLE_MP_WARNING]
    assert allowed("CREATE", obj("BGPPeer", "p", {**PEER, "peerAddress": "bad", "disableMP": True})) == [
        DISABLE_MP_WARNING]
    # on update the peer is validated
    old = obj("BGPPeer", "p", PEER)
    assert "invalid BGPPeer address" in denied(
        "UPDATE", obj("BGPPeer", "p", {**PEER, "peerAddress": "bad", "disableMP": True}), {"BGPPeer": [old]}, old)


def test_peer_validated_with_existing_peers() -> None:
    existing = {"BGPPeer": [obj("BGPPeer", "a", PEER)], "Node": [node("n1")]}
    assert allowed("CREATE", obj("BGPPeer", "b", {**PEER, "peerAddress": "10.0.0.2"}), existing) == []


# ---------------------------------------------------------------------------------------------- Community
def test_community_rules() -> None:
    good = obj("Community", "c1", {"communities": [{"name": "a", "value": "65535:65282"}]})
    assert allowed("CREATE", good) == []
    msg = denied("CREATE", obj("Community", "c2", {"communities": [{"name": "a", "value": "1:1"}]}),
                 {"Community": [good]})
    assert 'duplicate definition of community "a"' in msg
    msg = denied("CREATE", obj("Community", "c2", {"communities": [{"name": "b", "value": "1:99999"}]}))
    assert 'parsing community "b": invalid community value: invalid section "99999"' in msg
    msg = denied("CREATE", obj("Community", "c2", {"communities": [{"name": "b", "value": "1:1"},
                                                                   {"name": "b", "value": "1:2"}]}))
    assert 'duplicate definition of community "b"' in msg


# ---------------------------------------------------------------------------------------------- BFDProfile
def test_bfd_profile_create_rules() -> None:
    assert allowed("CREATE", obj("BFDProfile", "b", {"receiveInterval": 300})) == []
    msg = denied("CREATE", obj("BFDProfile", "b", {"receiveInterval": 5}))
    assert "invalid value 5, must be in 10-60000 range" in msg and "invalid receive interval value" in msg
    msg = denied("CREATE", obj("BFDProfile", "b", {"detectMultiplier": 1}))
    assert "invalid value 1, must be in 2-255 range" in msg


def test_bfd_profile_delete_in_use() -> None:
    profile = obj("BFDProfile", "fast", {})
    peers = {"BGPPeer": [obj("BGPPeer", "zeta", {**PEER, "bfdProfile": "fast"}),
                         obj("BGPPeer", "alpha", {**PEER, "bfdProfile": "fast"}),
                         obj("BGPPeer", "other", {**PEER, "bfdProfile": "slow"})]}
    assert denied("DELETE", None, peers, old=profile) == "failed to delete BFDProfile fast, used by BGPPeer alpha"
    assert allowed("DELETE", None, {"BGPPeer": peers["BGPPeer"][2:]}, old=profile) == []


def test_delete_of_other_kinds_is_allowed() -> None:
    assert allowed("DELETE", None, {}, old=pool("p", "10.0.0.0/24")) == []


# ---------------------------------------------------------------------------------------------- plumbing
def test_reset_transient_does_not_touch_its_input() -> None:
    ad = obj("BGPAdvertisement", "ad", {"communities": ["alias", "1:1", "large:1:2:3"]})
    assert reset_transient(ad)["spec"]["communities"] == ["1:1", "large:1:2:3"]
    assert ad["spec"]["communities"] == ["alias", "1:1", "large:1:2:3"]
    peer = obj("BGPPeer", "p", {**PEER, "bfdProfile": "b", "passwordSecret": {"name": "s"}})
    assert reset_transient(peer)["spec"] == PEER


def test_listed_core_objects_get_their_kind() -> None:
    """List items of Nodes come without apiVersion and kind."""
    bare = {"metadata": {"name": "n1", "labels": {"r": "1"}}}
    pools = {"IPAddressPool": [pool("p", "10.0.0.0/24")]}
    first = obj("BGPAdvertisement", "a1", {"localPref": 100, "nodeSelectors": [{"matchLabels": {"r": "1"}}]})
    second = obj("BGPAdvertisement", "a2", {"localPref": 200, "nodeSelectors": [{"matchLabels": {"z": "1"}}]})
    assert allowed("CREATE", second, {**pools, "BGPAdvertisement": [first], "Node": [bare]}) == []


def test_not_an_admission_review() -> None:
    out = review({"kind": "Other"}, {}, namespace=NS)
    assert out["response"]["allowed"] is False
    assert "bad admission request" in out["response"]["status"]["message"]
