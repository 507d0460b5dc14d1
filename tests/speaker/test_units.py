"""The speaker's pure parts: the node-filtered configuration, the per-node decision and the status plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ironlb.bgp.planner import ServiceInput
from ironlb.cluster.objects import Endpoint, EndpointSlice, Node, Service
from ironlb.config import load_objects
from ironlb.kube.slim import slim_node
from ironlb.layer2.election import sort_candidates
from ironlb.speaker import status as st
from ironlb.speaker.decide import IP_NOT_ALLOWED, decide_node, for_node, pool_for, speaker_config

NS = "metallb-system"


def _objs(peer_selector: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    sel = [{"matchLabels": peer_selector}] if peer_selector else []
    return [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "l2", "namespace": NS},
         "spec": {"addresses": ["192.168.1.240/30"]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "bgp", "namespace": NS},
         "spec": {"addresses": ["10.0.0.0/24"]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "l2", "namespace": NS},
         "spec": {"ipAddressPools": ["l2"]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": {"name": "b", "namespace": NS},
         "spec": {"ipAddressPools": ["bgp"], "nodeSelectors": sel}},
        {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "r", "namespace": NS},
         "spec": {"myASN": 64513, "peerASN": 64512, "peerAddress": "192.168.1.1", "nodeSelectors": sel}},
    ]  # fmt: skip


def _svc(name: str, ip: str, *, etp: str = "Cluster", lb_class: str | None = None) -> Service:
    return Service("app", name, "LoadBalancer", cluster_ips=("10.96.0.10",), ingress=(ip,),
                   external_traffic_policy=etp, load_balancer_class=lb_class)  # fmt: skip


def _slice(name: str, *nodes: str) -> EndpointSlice:
    return EndpointSlice("app", f"{name}-x", name, tuple(Endpoint((f"10.244.0.{i}",), n) for i, n in enumerate(nodes)))


NODES = [Node("a"), Node("b"), Node("c")]


def test_peers_and_bgp_ads_filtered_to_this_node_but_l2_ads_kept() -> None:
    res = load_objects(_objs({"rack": "1"}), default_namespace=NS)
    assert [p.name for p in for_node(res, {"rack": "1"}).bgp_peers] == ["r"]
    mine = for_node(res, {"rack": "2"})
    assert mine.bgp_peers == () and mine.bgp_advertisements == ()
    assert len(mine.l2_advertisements) == 1
    assert speaker_config(_objs({"rack": "1"}), {"rack": "2"}, NS).peers == ()


def test_a_broken_peer_for_another_node_does_not_invalidate_this_one() -> None:
    objs = _objs({"rack": "1"})
    objs[4]["spec"]["peerAddress"] = "not-an-ip"
    config = speaker_config(objs, {"rack": "2"}, NS)  # MetalLB 1.2/23: only peers selecting the node count
    assert [p.name for p in config.pools] == ["bgp", "l2"]


def test_pool_for_needs_every_ip() -> None:
    config = speaker_config(_objs(), {}, NS)
    assert pool_for(config, ["192.168.1.241"]).name == "l2"  # type: ignore[union-attr]
    assert pool_for(config, ["192.168.1.241", "10.0.0.1"]) is None
    assert pool_for(config, ["8.8.8.8"]) is None


def _inputs(config: Any, *svcs: tuple[Service, EndpointSlice]) -> dict[str, ServiceInput]:
    return {s.key: ServiceInput(s, pool_for(config, s.ingress), (e,)) for s, e in svcs}


def test_decide_node_l2_winner_statuses_and_series() -> None:
    config = speaker_config(_objs(), {}, NS)
    ip = "192.168.1.241"
    inputs = _inputs(config, (_svc("web", ip), _slice("web", "a", "b", "c")))
    winner = sort_candidates(["a", "b", "c"], ip)[0]
    for node in ("a", "b", "c"):
        d = decide_node(config, node, NODES, inputs, live=None)
        assert d.layer2["app/web"].node == winner
        if node == winner:
            assert d.announcement.layer2 == {ip: ()}
            assert d.l2_status == {"app/web": ()}
            assert d.announcement.series == {("app/web", "layer2", node, ip)}
        else:
            assert d.announcement.layer2 == {} and d.l2_status == {}
    # Only live members count; without quorum nothing is announced over L2.
    others = [n for n in ("a", "b", "c") if n != winner]
    d = decide_node(config, others[0], NODES, inputs, live=others)
    assert d.layer2["app/web"].node == sort_candidates(others, ip)[0]
    d = decide_node(config, winner, NODES, inputs, live=["a", "b", "c"], may_announce_l2=False)
    assert d.announcement.layer2 == {}
    # The interface the advertisement names does not exist here: announceFailed, nothing announced.
    d = decide_node(config, winner, NODES, inputs, live=None, interfaces_available=lambda ifs: False)
    assert d.announce_failed == {"app/web": (ip,)} and d.announcement.layer2 == {}


def test_decide_node_ip_outside_every_pool_is_not_announced() -> None:
    config = speaker_config(_objs(), {}, NS)
    inputs = {"app/x": ServiceInput(_svc("x", "8.8.8.8"), None, (_slice("x", "a"),))}
    d = decide_node(config, "a", NODES, inputs, live=None)
    assert d.layer2["app/x"].reason == IP_NOT_ALLOWED and d.announcement.layer2 == {}


def test_decide_node_bgp_cluster_local_and_node_state() -> None:
    config = speaker_config(_objs(), {}, NS)
    inputs = _inputs(config, (_svc("c", "10.0.0.1"), _slice("c", "a")),
                     (_svc("l", "10.0.0.2", etp="Local"), _slice("l", "b")))  # fmt: skip
    a = decide_node(config, "a", NODES, inputs, live=None)
    b = decide_node(config, "b", NODES, inputs, live=None)
    assert a.bgp_status == {"app/c": ("r",)}
    assert b.bgp_status == {"app/c": ("r",), "app/l": ("r",)}
    assert ("app/l", "bgp", "b", "10.0.0.2") in b.announcement.series
    excluded = [Node("a"), Node("b", {"node.kubernetes.io/exclude-from-external-load-balancers": ""}), Node("c")]
    assert decide_node(config, "b", excluded, inputs, live=None).bgp_status == {}
    assert decide_node(config, "b", excluded, inputs, live=None, ignore_exclude_lb=True).bgp_status == b.bgp_status
    down = [Node("a"), Node("b", network_unavailable=True), Node("c")]
    assert decide_node(config, "b", down, inputs, live=None).bgp_status == {}


def test_status_plan_l2_winner_cleans_up() -> None:
    def obj(name: str, node: str, svc: str = "web", status: dict[str, Any] | None = None) -> dict[str, Any]:
        labels = {st.NODE_LABEL: node, st.SERVICE_NAME_LABEL: svc, st.SERVICE_NAMESPACE_LABEL: "app"}
        return {"metadata": {"name": name, "labels": labels}, "status": status or {}}

    good = st.desired_status(st.L2, "a", "app/web", [])
    existing = [obj("l2-1", "a", status=good), obj("l2-2", "a"), obj("l2-3", "b"), obj("l2-4", "a", "gone")]
    actions = st.plan_actions(st.L2, "a", {"app/web": ()}, existing)
    assert set(actions) == {st.Delete(st.L2, "l2-2"), st.Delete(st.L2, "l2-3"), st.Delete(st.L2, "l2-4")}
    # A loser deletes only its own; it never touches the winner's.
    assert st.plan_actions(st.L2, "b", {}, existing) == [st.Delete(st.L2, "l2-3")]
    created = st.plan_actions(st.L2, "c", {"app/web": ("eth0",)}, [])
    assert created == [st.Create(st.L2, "app/web", {"node": "c", "serviceName": "web", "serviceNamespace": "app",
                                                    "interfaces": [{"name": "eth0"}]})]
    # BGP: only its own objects, rewritten when the peers change.
    bgp = [obj("bgp-1", "a", status=st.desired_status(st.BGP, "a", "app/web", ["r1"])), obj("bgp-2", "b")]
    assert st.plan_actions(st.BGP, "a", {"app/web": ("r1", "r2")}, bgp) == [
        st.WriteStatus(st.BGP, "bgp-1", st.desired_status(st.BGP, "a", "app/web", ["r1", "r2"]))
    ]
    meta = st.new_object(st.BGP, "a", "app/web", NS, {"kind": "Pod", "name": "p", "uid": "u", "apiVersion": "v1"})
    assert meta["metadata"]["generateName"] == "bgp-"
    assert meta["metadata"]["ownerReferences"][0]["name"] == "p"


def test_slim_node_keeps_only_what_matters() -> None:
    node = {"metadata": {"name": "a", "labels": {"x": "1"}, "annotations": {"big": "y" * 1000}},
            "status": {"conditions": [{"type": "Ready", "status": "True"},
                                      {"type": "NetworkUnavailable", "status": "True"}], "images": [1, 2]}}  # fmt: skip
    slim = slim_node(node)
    assert Node.from_dict(slim) == Node("a", {"x": "1"}, True)
    assert "annotations" not in slim["metadata"] and "images" not in slim["status"]


def test_lb_class_filter_is_the_controllers() -> None:
    from ironlb.ipam.converge import handles_class

    assert handles_class(_svc("x", "1.1.1.1"), "")
    assert not handles_class(_svc("x", "1.1.1.1", lb_class="other"), "")
    assert handles_class(_svc("x", "1.1.1.1", lb_class="mine"), "mine")


async def test_no_memberlist_key_means_no_membership_rather_than_a_known_key(tmp_path: Path) -> None:
    from ironlb.speaker.speaker import Speaker, SpeakerOptions

    options = SpeakerOptions(node="n1", ml_bind_addr="127.0.0.1", ml_labels="app=x", ml_secret_key_path=str(tmp_path))
    speaker = Speaker(object(), options)  # type: ignore[arg-type] # no API call is made
    await speaker._start_membership()
    assert speaker.membership is None
    (tmp_path / "secretkey").write_text("short\n")
    await speaker._start_membership()
    assert speaker.membership is None


def test_the_fast_process_carries_responders_bfd_and_membership() -> None:
    from ironlb.fastproc.parent import RemoteBFD, RemoteResponder
    from ironlb.speaker.speaker import Speaker, SpeakerOptions

    speaker = Speaker(object(), SpeakerOptions(node="n1", fastpath_process=True))  # type: ignore[arg-type]
    assert speaker.fastproc is not None and not speaker.fastpath.threaded
    assert isinstance(speaker.announcer.responder, RemoteResponder)
    assert isinstance(speaker.announcer.bgp._bfd_factory, RemoteBFD)
    threaded = Speaker(object(), SpeakerOptions(node="n1"))  # type: ignore[arg-type]
    assert threaded.fastproc is None and threaded.fastpath.threaded


class _StatusClient:
    """Records the status writes; ``create`` of the services in ``refuse`` fails as an apiserver error would."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.in_flight = 0
        self.most_in_flight = 0
        self.created: list[str] = []
        self.patched: list[str] = []

    async def create(self, res: Any, obj: dict[str, Any], ns: str) -> dict[str, Any]:
        import asyncio

        from ironlb.kube.client import ApiError

        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(3):  # a round trip: every other write gets to start meanwhile
                await asyncio.sleep(0)
            service = obj["metadata"]["labels"][st.SERVICE_NAME_LABEL]
            if service in self.refuse:
                raise ApiError("POST", "/servicel2statuses", 500, {"message": "etcd timeout"})
            name = f"l2-{len(self.created)}"
            self.created.append(service)
            return {"metadata": {**obj["metadata"], "name": name}}
        finally:
            self.in_flight -= 1

    async def patch(self, res: Any, name: str, body: dict[str, Any], ns: str, *, subresource: str) -> dict[str, Any]:
        self.patched.append(body["status"]["serviceName"])
        return {"metadata": {"name": name}, "status": body["status"]}


async def test_status_writes_run_concurrently_bounded_and_one_refusal_cancels_none() -> None:
    import pytest

    from ironlb.decide import NodeDecision
    from ironlb.kube.client import ApiError
    from ironlb.speaker.speaker import Speaker, SpeakerOptions

    client = _StatusClient(refuse={"svc-3"})
    options = SpeakerOptions(node="n1", status_concurrency=8)
    speaker = Speaker(object(), options, status_client=client)  # type: ignore[arg-type] # statuses only
    services = [f"svc-{i}" for i in range(40)]
    speaker.decision = NodeDecision(l2_status={f"app/{s}": ("eth0",) for s in services})
    with pytest.raises(ApiError, match="etcd timeout"):
        await speaker.write_statuses()
    assert client.most_in_flight == 8  # concurrent, and never more than the bound
    want = [s for s in services if s != "svc-3"]
    assert sorted(client.created) == sorted(want)  # the refusal cancelled none of the other writes
    assert sorted(client.patched) == sorted(want)


def test_status_plan_of_the_changes_equals_the_full_plan() -> None:
    import random

    rng = random.Random(3)
    services = [f"app/s{i}" for i in range(12)]

    def obj(name: str, node: str, svc: str, status: dict[str, Any]) -> dict[str, Any]:
        ns, _, short = svc.partition("/")
        labels = {st.NODE_LABEL: node, st.SERVICE_NAME_LABEL: short, st.SERVICE_NAMESPACE_LABEL: ns}
        return {"metadata": {"name": name, "labels": labels}, "status": status}

    def desired() -> dict[str, tuple[str, ...]]:
        return {s: tuple(rng.sample(["eth0", "eth1"], rng.randrange(3))) for s in services if rng.random() < 0.5}

    for kind in (st.L2, st.BGP) * 30:
        previous = desired()
        # What the last plan left: this node's objects, right; other nodes' objects only where it does not win.
        existing = {f"o-{s}": obj(f"o-{s}", "a", s, st.desired_status(kind, "a", s, d)) for s, d in previous.items()}
        existing |= {f"x-{s}": obj(f"x-{s}", "b", s, {}) for s in services if s not in previous or kind == st.BGP}
        assert st.plan_actions(kind, "a", previous, existing.values()) == []
        dirty: set[str] = set()
        for s in rng.sample(services, 3):  # objects changed under it (a delete, another node's write, a stale one)
            dirty.add(s)
            change = rng.choice(["drop", "other", "stale"])
            if change == "drop":
                existing.pop(f"o-{s}", None)
            elif change == "other":
                existing[f"y-{s}"] = obj(f"y-{s}", "c", s, {})
            else:
                existing[f"o-{s}"] = obj(f"o-{s}", "a", s, {})
        now = desired()
        full = st.plan_actions(kind, "a", now, existing.values())
        some = st.plan_changes(kind, "a", now, previous, dirty, existing.values())
        assert sorted(map(repr, some)) == sorted(map(repr, full))


def test_a_speaker_that_starts_during_a_hold_gives_the_held_member_its_ips_from_its_first_decision() -> None:
    """No decision yet when the hold is in the view: the held member counts fully for the first decision (``late``),
    and the next context gives it what that decision elects it, minus the Services this speaker succeeds it in whose
    IPs the hold did not ask it to stand in for (created during the hold: this speaker announces them)."""
    from ironlb.config.types import Config
    from ironlb.decide import NodeDecision
    from ironlb.layer2.election import L2Decision
    from ironlb.membership.view import MembershipView
    from ironlb.speaker.speaker import Speaker, SpeakerOptions

    speaker = Speaker(object(), SpeakerOptions(node="n2"))  # type: ignore[arg-type] # no API call is made
    alive = frozenset({"n1", "n2", "n3"})
    view = MembershipView(alive, True, True, {}, frozenset({"n3"}), {"n3": frozenset({"10.0.0.1"})})
    speaker.membership = type("Held", (), {"view": view})()
    speaker._members_known, speaker._nodes_dirty = True, False
    speaker._ingress = {"default/held": ("10.0.0.1",), "default/new": ("10.0.0.2",), "default/other": ("10.0.0.3",)}
    assert speaker._context(Config()).held == {}, "no decision yet: counted fully"
    assert speaker._late_holds == {"n3"}
    layer2 = {
        "default/held": L2Decision("n3", None, (), ("n3", "n2", "n1")),
        "default/new": L2Decision("n3", None, (), ("n3", "n2", "n1")),
        "default/other": L2Decision("n3", None, (), ("n3", "n1", "n2")),
    }
    speaker.decision, speaker._decided_live = NodeDecision(layer2=layer2), alive
    assert speaker._context(Config()).held == {"n3": frozenset({"10.0.0.1", "10.0.0.3"})}
    assert speaker._late_holds == frozenset()
    assert speaker._context(Config()).held == {"n3": frozenset({"10.0.0.1", "10.0.0.3"})}, "kept from then on"


async def test_a_thread_mode_speaker_takes_holds_by_the_fast_process_code(tmp_path: Path) -> None:
    """``--fastpath thread``: the membership accepts holds (``hold_max`` as configured, not 0) and the responder's
    probe of a held node ends its hold (``ironlb.fastproc.holds``, the fast process's own code)."""
    import socket

    from ironlb.layer2.responder import Responder
    from ironlb.speaker.speaker import Speaker, SpeakerOptions

    (tmp_path / "secretkey").write_text("k" * 40 + "\n")
    for _ in range(5):  # a port free a moment ago (the member list needs a real one): another try if taken since
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        options = SpeakerOptions(node="n1", ml_bind_addr="127.0.0.1", ml_bind_port=port, ml_labels="app=x",
                                 ml_secret_key_path=str(tmp_path))  # fmt: skip
        speaker = Speaker(object(), options)  # type: ignore[arg-type] # no API call is made
        await speaker.fastpath.start()
        try:
            try:
                await speaker._start_membership()
            except OSError:
                continue
            assert speaker._core is not None and speaker._core.config.hold_max == options.membership.hold_max > 0
            responder = speaker.announcer.responder
            assert isinstance(responder, Responder) and responder.on_unreachable is not None
            return
        finally:
            if speaker.membership is not None:
                await speaker.fastpath.call(speaker.membership.stop(leave=False))
            await speaker.fastpath.stop()
    raise AssertionError("no free UDP port in five tries")
