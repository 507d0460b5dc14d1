"""The pure explanation: every reason it gives, computed by the controller's and speakers' own functions."""

from __future__ import annotations

import ipaddress
import itertools
import random
from dataclasses import replace

import pytest

from ironlb.cluster.labels import LabelSelector
from ironlb.cluster.objects import EXCLUDE_LB_LABEL, Endpoint, EndpointSlice, Node, Service, ServicePort
from ironlb.config import ConfigError, load_texts
from ironlb.config.types import L2Advertisement, Pool
from ironlb.explain.core import (
    Announced,
    ComponentState,
    EventRecord,
    MemberView,
    changed_config,
    explain,
    merge_resources,
    what_if,
)
from ironlb.explain.render import render, render_what_if
from ironlb.layer2.election import candidate_reason, elect, sort_candidates
from tests.explain.support import config_of, l2ad, node, pool, service, slice_, view_of

NODES = "".join(node(n, "{zone: main}") for n in ("node-a", "node-b", "node-c", "node-d"))
# MetalLB's TestSortL2Candidates vector: for 10.0.0.1 the order is node-b, node-a, node-c.
ORDER = ["node-b", "node-a", "node-c"]


def l2_rows(result: dict, key: str = "default/web") -> dict[str, dict]:
    return {r["node"]: r for r in result["services"][key]["layer2"]["nodes"]}


def test_every_node_reason_in_the_election() -> None:
    view = view_of(
        pool("p", "10.0.0.0/24")
        + l2ad("ad", "{nodeSelectors: [{matchLabels: {zone: main}}]}")
        + NODES
        + node("node-x", f"{{zone: main, {EXCLUDE_LB_LABEL}: ''}}")
        + node("node-u", "{zone: main}", unavailable=True)
        + node("node-s", "{zone: other}")
        + service("web", "10.0.0.1")
        + slice_("web", "node-a"),
        live=("node-a", "node-b", "node-c", "node-x", "node-u", "node-s"),
    )
    result = explain(view)
    entry = result["services"]["default/web"]
    assert entry["ingress"] == ["10.0.0.1"] and entry["pool"] == "p"
    assert entry["layer2"]["node"] == "node-b" == sort_candidates(ORDER, "10.0.0.1")[0]
    rows = l2_rows(result)
    assert rows["node-b"] == {"node": "node-b", "state": "elected", "reason": None}
    assert (rows["node-a"]["state"], rows["node-a"]["rank"]) == ("standby", 1)
    assert (rows["node-c"]["state"], rows["node-c"]["rank"]) == ("standby", 2)
    assert rows["node-x"]["reason"] == "nodeLabeledExcludeBalancers"
    assert rows["node-u"]["reason"] == "nodeNetworkUnavailable"
    assert rows["node-s"]["reason"] == "noMatchingAdvertisement"
    assert rows["node-d"]["reason"] == "speakerNotLive"
    assert result["problems"] == []
    # --ignore-exclude-lb makes the labelled node a candidate again
    rows = l2_rows(explain(replace(view, ignore_exclude_lb=True)))
    assert rows["node-x"]["state"] in ("standby", "elected")


def test_no_speaker_on_a_node_is_named() -> None:
    view = view_of(pool("p", "10.0.0.0/24") + l2ad("ad") + NODES + service("web", "10.0.0.1") + slice_("web", "node-a"),
                   speakers=("node-a", "node-b", "node-c"))
    rows = l2_rows(explain(view))
    assert rows["node-d"]["reason"] == "speakerNotLive"
    assert rows["node-d"]["detail"] == "no speaker runs on this node"


def test_local_traffic_policy_elects_among_nodes_with_an_endpoint() -> None:
    view = view_of(pool("p", "10.0.0.0/24") + l2ad("ad") + NODES + service("web", "10.0.0.1", etp="Local")
                   + slice_("web", "node-c", "node-a"))
    rows = l2_rows(explain(view))
    assert rows["node-a"]["state"] == "elected"  # node-a before node-c for 10.0.0.1
    assert rows["node-c"]["state"] == "standby"
    assert rows["node-b"]["reason"] == rows["node-d"]["reason"] == "noLocalEndpoints"


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("", "notOwner"),  # no EndpointSlice: no serving endpoint
        ("selector", "noMatchingAdvertisement"),
        ("shared", "sharedIPWithServiceSelector"),
    ],
)
def test_service_level_reasons(extra: str, reason: str) -> None:
    ad = l2ad("ad", "{serviceSelectors: [{matchLabels: {tier: front}}]}") if extra else l2ad("ad")
    labels = "{tier: front}" if extra == "shared" else "{}"
    annotations = "{metallb.io/allow-shared-ip: k}" if extra == "shared" else "{}"
    text = pool("p", "10.0.0.0/24") + ad + NODES + service("web", "10.0.0.1", labels=labels, annotations=annotations)
    if extra:
        text += slice_("web", "node-a")
    result = explain(view_of(text))
    layer2 = result["services"]["default/web"]["layer2"]
    assert (layer2["node"], layer2["reason"]) == (None, reason)
    assert {r["reason"] for r in layer2["nodes"]} == {reason}
    assert reason in render(result)


@pytest.mark.parametrize(
    ("svc", "pools", "expected"),
    [
        (service("web"), pool("a", "10.0.0.0/24") + pool("b", "10.1.0.0/24"), "auto-assigned"),
        (service("web", annotations="{metallb.io/address-pool: b}"), pool("a", "10.0.0.0/24") + pool("b", "10.1.0.0/24"),
         "requested by the metallb.io/address-pool annotation"),
        (service("web", annotations="{metallb.io/loadBalancerIPs: 10.1.0.7}"), pool("a", "10.0.0.0/24") + pool("b", "10.1.0.0/24"),
         "the requested IPs (metallb.io/loadBalancerIPs: 10.1.0.7)"),
        (service("web"), pool("a", "10.0.0.0/24") + pool("b", "10.1.0.0/24", extra="  serviceAllocation: {priority: 5, namespaces: [default]}"),
         "serviceAllocation (priority 5) selects the Service's namespace"),
    ],
)
def test_pool_reasons(svc: str, pools: str, expected: str) -> None:
    result = explain(view_of(pools + l2ad("ad") + NODES + svc, allocate=True))
    entry = result["services"]["default/web"]
    assert entry["poolReason"].startswith(expected), entry
    if "auto" not in expected:
        assert entry["pool"] == "b"


def test_why_no_ip() -> None:
    view = view_of(pool("one", "10.0.0.1/32") + l2ad("ad") + NODES + service("first") + service("second")
                   + service("other", lb_class="someone-else"), allocate=True)
    result = explain(view)
    assert result["services"]["default/first"]["ingress"] == ["10.0.0.1"]
    second = result["services"]["default/second"]
    assert second["ingress"] == [] and second["noIPReason"] == 'Failed to allocate IP for "default/second": no available IPs'
    assert [e["reason"] for e in second["events"]] == ["AllocationFailed"] * len(second["events"])
    assert result["services"]["default/other"]["ignored"].startswith('loadBalancerClass "someone-else"')
    assert "pool one is full" in result["problems"]
    text = render(result)
    assert "no available IPs" in text and "<none>" in text
    # no pool at all
    empty = explain(replace(view, config=config_of(l2ad("ad"))))
    assert empty["services"]["default/first"]["noIPReason"] == "no IPAddressPool is configured"
    assert explain(replace(view, config=None))["problems"][-1] == "no valid configuration is in force"


def test_observed_status_against_the_controllers_allocation() -> None:
    """In a cluster the IPs are the status the controller wrote; a Service it has not converged yet is named."""
    view = view_of(pool("p", "10.0.0.0/24") + l2ad("ad") + NODES + service("web", "10.0.0.9") + service("new")
                   + service("stray", "192.0.2.1") + slice_("web", "node-a"))
    result = explain(view, only=["default/web", "default/new", "default/stray", "default/gone"])
    assert result["services"]["default/web"]["ingress"] == ["10.0.0.9"]
    assert "controllerWouldAssign" not in result["services"]["default/web"]
    # the stray Service's IP is in no pool: the controller hands it 10.0.0.0 first (Services holding IPs go first)
    assert result["services"]["default/stray"]["controllerWouldAssign"] == ["10.0.0.0"]
    assert result["services"]["default/new"]["controllerWouldAssign"] == ["10.0.0.1"]
    stray = result["services"]["default/stray"]
    assert stray["pool"] is None and stray["layer2"]["reason"] == "ipNotAllowed"
    assert any("in no pool" in p for p in result["problems"])
    assert "default/gone: no such LoadBalancer Service" in result["problems"]


def test_announcements_and_events_observed() -> None:
    view = view_of(pool("p", "10.0.0.0/24") + l2ad("ad") + NODES + service("web", "10.0.0.1") + slice_("web", "node-a"))
    events = {"default/web": (EventRecord("Normal", "nodeAssigned", "announcing from node \"node-b\"", 2, "t1"),)}
    good = explain(replace(view, announced={"default/web": (Announced("node-b", "layer2", ("eth0",)),)},
                           announcements_known=True, events=events))
    assert good["services"]["default/web"]["layer2"]["announcedBy"] == ["node-b"]
    assert good["services"]["default/web"]["events"] == [
        {"type": "Normal", "reason": "nodeAssigned", "message": 'announcing from node "node-b"', "count": 2, "last": "t1"}
    ]
    assert good["problems"] == []
    bad = explain(replace(view, announced={"default/web": (Announced("node-a", "layer2"), Announced("node-b", "layer2"))},
                          announcements_known=True))
    assert any("announced by [node-a, node-b], elected: [node-b]" in p for p in bad["problems"])
    nobody = explain(replace(view, announcements_known=True))
    assert "announced by nobody" in render(nobody, details=True)
    assert nobody["problems"]


def test_no_quorum_speaker_is_elected_but_silent() -> None:
    view = view_of(pool("p", "10.0.0.0/24") + l2ad("ad") + NODES + service("web", "10.0.0.1") + slice_("web", "node-a"),
                   no_quorum=("node-b",),
                   members=(MemberView("node-b", ("node-b",), False), MemberView("node-a", ("node-a", "node-c"), True)))
    result = explain(view)
    assert l2_rows(result)["node-b"]["state"] == "elected-no-quorum"
    assert "the speakers' membership views disagree" in result["problems"]
    assert "node-b: no membership quorum" in result["problems"]
    assert result["membership"]["views"]["node-a"] == {"alive": ["node-a", "node-c"], "quorum": True}


def test_configuration_errors_are_problems() -> None:
    view = view_of(pool("p", "10.0.0.0/24") + l2ad("ad") + NODES,
                   components=(ComponentState("controller", True), ComponentState("speaker-node-a", False, "bad peer")))
    result = explain(view)
    assert result["configuration"] == [
        {"name": "controller", "valid": True, "error": None},
        {"name": "speaker-node-a", "valid": False, "error": "bad peer"},
    ]
    assert result["problems"] == ["speaker-node-a: configuration error: bad peer"]
    assert "INVALID" in render(result)


BGP = """
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: metallb-system}
spec: {}
"""


def test_bgp_nodes_and_their_reasons() -> None:
    view = view_of(pool("p", "10.0.0.0/24") + BGP + NODES + node("node-x", f"{{{EXCLUDE_LB_LABEL}: ''}}")
                   + service("web", "10.0.0.1", etp="Local") + slice_("web", "node-a", "node-x"))
    result = explain(view)
    entry = result["services"]["default/web"]
    assert "layer2" not in entry  # a BGP-only pool
    rows = {r["node"]: r for r in entry["bgp"]["nodes"]}
    assert rows["node-a"] == {"node": "node-a", "reason": None, "peers": ["tor"]}
    assert rows["node-b"]["reason"] == "noLocalEndpoints"
    assert rows["node-x"]["reason"] == "nodeLabeledExcludeBalancers"
    assert "BGP node-a" in render(result)


def test_what_if_every_kind_of_change() -> None:
    before = (pool("p", "10.0.0.0/30") + l2ad("ad") + NODES
              + service("keeps", "10.0.0.1") + service("moved", "10.0.0.2") + service("waits")
              + slice_("keeps", "node-a") + slice_("moved", "node-a"))
    view = view_of(before)
    # the pool shrinks to 10.0.0.1 and a second pool appears: "moved" leaves 10.0.0.2, "waits" gets an IP
    new = config_of(pool("p", "10.0.0.1/32") + pool("q", "10.9.0.0/30") + l2ad("ad"))
    result = what_if(view, new)
    services = result["services"]
    assert services["default/keeps"]["change"] == "unchanged"
    assert services["default/moved"]["change"] == "moves"
    assert services["default/moved"]["after"]["pool"] == "q"
    assert services["default/waits"]["change"] == "getsIP"
    assert result["summary"] == {"unchanged": 1, "moves": 1, "getsIP": 1}
    # without the second pool "moved" loses its IP, and says why
    lost = what_if(view, config_of(pool("p", "10.0.0.1/32") + l2ad("ad")))["services"]["default/moved"]
    assert lost["change"] == "losesIP" and "no available IPs" in lost["reason"]
    # only the advertisement changes: the announcer does
    pinned = what_if(view, config_of(pool("p", "10.0.0.0/30") + l2ad("ad", "{nodeSelectors: [{matchLabels: {kubernetes.io/hostname: none}}]}")))
    assert pinned["services"]["default/keeps"]["change"] == "announcerChanges"
    text = render_what_if(result)
    assert "moves" in text and "getsIP" in text and "summary:" in text


def test_rendering_colour_and_hostile_text() -> None:
    view = view_of(pool("p", "10.0.0.0/24") + l2ad("ad") + NODES + service("web", "10.0.0.1") + slice_("web", "node-a"))
    events = {"default/web": (EventRecord("Warning", "x", "evil\x1b[2Jmessage" + "y" * 500),)}
    result = explain(replace(view, events=events))
    plain = render(result, details=True)
    assert "\x1b" not in plain and "evil?[2Jmessage" in plain
    assert max(len(line) for line in plain.splitlines()) < 320
    assert "\x1b[" in render(result, colour=True)


def test_candidate_reason_is_the_elections_filter() -> None:
    """The per-node reasons and the election agree: the candidates are exactly the nodes without a reason."""
    rng = random.Random(7)
    names = [f"n{i}" for i in range(6)]
    for _ in range(200):
        nodes = [Node(n, {"zone": rng.choice(["a", "b"]), **({EXCLUDE_LB_LABEL: ""} if rng.random() < 0.2 else {})},
                      rng.random() < 0.2) for n in names]
        live = [n for n in names if rng.random() < 0.8]
        local = rng.random() < 0.5
        svc = Service("default", "web", "LoadBalancer", cluster_ips=("10.96.0.1",), ports=(ServicePort("TCP", 80),),
                      ingress=("10.0.0.1",), external_traffic_policy="Local" if local else "Cluster")
        on = [n for n in names if rng.random() < 0.6]
        slices = [EndpointSlice("default", "web-1", "web", tuple(Endpoint(("10.1.0.1",), n) for n in on))]
        ad = L2Advertisement("ad", node_selectors=(LabelSelector((("zone", "a"),)),))
        p = Pool("p", (ipaddress.ip_network("10.0.0.0/24"),), l2_advertisements=(ad,))
        d = elect(svc, p, nodes, live, slices)
        reasons = {
            n.name: candidate_reason(n, [ad], set(on) if local else None, live=n.name in live) for n in nodes
        }
        if d.node is not None:
            assert set(d.candidates) == {n for n, r in reasons.items() if r is None}
        else:
            assert d.reason is not None
    assert list(itertools.islice(sort_candidates(ORDER, "10.0.0.1"), 3)) == ORDER


def test_standalone_local_service_without_slices_is_served_everywhere() -> None:
    """`ironlb run` counts a Service without EndpointSlices as served on every node: no node lacks a local endpoint."""
    view = view_of(pool("p", "10.0.0.0/24") + l2ad("ad") + NODES + service("web", etp="Local"),
                   allocate=True, served_without_slices=True)
    rows = l2_rows(explain(view))
    assert sorted(r["state"] for r in rows.values()) == ["elected", "standby", "standby", "standby"]


def test_what_if_a_deletion_and_a_bad_one() -> None:
    current = load_texts([("c.yaml", pool("a", "10.0.0.0/30") + pool("b", "10.1.0.0/30") + l2ad("ad"))],
                         default_namespace="metallb-system")  # fmt: skip
    merged = merge_resources(current, None, ["IPAddressPool/a"])
    assert [p.name for p in merged.pools] == ["b"] and [a.name for a in merged.l2_advertisements] == ["ad"]
    with pytest.raises(ConfigError) as err:
        merge_resources(current, None, ["IPAddressPool/nope", "Pool/a", "L2Advertisement"])
    assert len(err.value.messages) == 3 and "no IPAddressPool named 'nope'" in err.value.messages[0]
    view = view_of(pool("a", "10.0.0.0/30") + pool("b", "10.1.0.0/30") + l2ad("ad") + NODES
                   + service("web", "10.0.0.1", annotations="{metallb.io/address-pool: a}"))
    result = what_if(view, changed_config(current, None, ["IPAddressPool/a"], "metallb-system"))
    web = result["services"]["default/web"]
    assert web["change"] == "losesIP", web
    assert web["reason"] == 'Failed to allocate IP for "default/web": unknown pool "a"'


def test_without_a_valid_configuration_services_are_not_blamed() -> None:
    """An invalid configuration is one problem, not one per Service holding an IP."""
    view = view_of(pool("p", "10.0.0.0/24") + l2ad("ad") + NODES + service("web", "10.0.0.1") + service("new"))
    result = explain(replace(view, config=None, components=(ComponentState("controller", False, "bad pool"),)))
    assert result["problems"] == ["controller: configuration error: bad pool", "no valid configuration is in force"]
    assert result["services"]["default/web"]["poolReason"] == "unknown: no valid configuration is in force"
    assert result["services"]["default/new"]["noIPReason"] == "no valid configuration is in force"
