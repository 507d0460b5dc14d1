"""MetalLB's controller schedule (``converge_all``, the one ``ironlb plan`` and the controller share): which
passes run, and so which events each Service gets and how often.

Each case is our own input and the output MetalLB's controller gives for it; the comment names the MetalLB
function whose rule it pins.
"""

from __future__ import annotations

from dataclasses import replace

from ironlb.cluster.objects import Service
from ironlb.ipam.allocator import Allocator
from ironlb.ipam.reprocess import Reconciler, SyncState, converge_all, set_balancer

from .helpers import DUAL, config, pool, svc

POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"


def at(s: Service, when: str) -> Service:
    return replace(s, creation_timestamp=when)


def reasons(outcome_events: tuple[object, ...]) -> list[str]:
    return [e.reason for e in outcome_events]  # type: ignore[attr-defined]


def test_an_allocation_key_change_reruns_every_service() -> None:
    """SetBalancer: ``prevAllocKey != newAllocKey`` -> SyncStateReprocessAll; reprocessAll re-runs *every* Service.

    ``local`` (externalTrafficPolicy Local: a backend key) takes the last IP, so its allocation key goes from ""
    to its selector: a second pass follows, and ``late`` reports its failure once per pass.
    """
    a = Allocator(config(pool("p", "10.0.0.0/32")))
    local = at(svc("local", etp="Local", selector={"app": "x"}), "2024-01-01T00:00:00Z")
    late = at(svc("late"), "2024-02-01T00:00:00Z")
    out = converge_all(a, [late, local])
    assert out["default/local"].service.ingress == ("10.0.0.0",)
    assert reasons(out["default/local"].events) == ["IPAllocated"]
    assert reasons(out["default/late"].events) == ["AllocationFailed", "AllocationFailed"]
    assert out["default/late"].events[1].message == 'Failed to allocate IP for "default/late": no available IPs'


def test_without_a_key_change_one_pass_and_one_failure_event() -> None:
    """The same with a plain Service: its allocation key stays "", nothing asks for a second pass."""
    a = Allocator(config(pool("p", "10.0.0.0/32")))
    out = converge_all(a, [at(svc("late"), "2024-02-01T00:00:00Z"), at(svc("first"), "2024-01-01T00:00:00Z")])
    assert reasons(out["default/first"].events) == ["IPAllocated"]
    assert reasons(out["default/late"].events) == ["AllocationFailed"]


def test_released_ips_ask_for_a_pass() -> None:
    """SetBalancer: a write that cleared IPs still in a pool -> SyncStateReprocessAll ("removed loadbalancer").

    ``mover`` holds the pool's only IP, ``waiter`` fails; then ``mover`` asks for an IP outside every pool: it
    gives its IP up and fails, and the pass that follows hands the IP to ``waiter``.
    """
    a = Allocator(config(pool("p", "10.0.0.0/32")))
    r = Reconciler(a)
    mover = at(svc("mover"), "2024-01-01T00:00:00Z")
    waiter = at(svc("waiter"), "2024-02-01T00:00:00Z")
    done = r.reprocess_all([waiter, mover])
    assert [x.convergence.events[0].reason for x in done.results] == ["IPAllocated", "AllocationFailed"]
    assert not r.finish(done)
    moved = replace(done.results[0].service, load_balancer_ip="10.9.9.9")
    synced = r.reconcile(moved)
    assert synced is not None and synced.state is SyncState.REPROCESS_ALL and synced.service.ingress == ()
    assert [e.reason for e in synced.convergence.events] == ["AllocationFailed"]
    done = r.reprocess_all([synced.service, waiter])
    assert [x.service.ingress for x in done.results] == [(), ("10.0.0.0",)]


def test_a_released_ip_on_restart_goes_to_the_next_service_in_the_same_pass() -> None:
    """On start-up the allocator is empty, so a Service giving up its status IP asks for nothing (prevIPs is
    empty); ``waiter``, converged after it, takes the IP in the same pass, and ``mover``'s own write converges it
    once more: two failure events."""
    a = Allocator(config(pool("p", "10.0.0.0/32")))
    mover = svc("mover", ingress=("10.0.0.0",), lb_ip="10.9.9.9", annotations={POOL_ANNOTATION: "p"})
    out = converge_all(a, [svc("waiter"), mover])
    assert out["default/waiter"].service.ingress == ("10.0.0.0",)
    assert out["default/mover"].service.ingress == ()
    failed = 'Failed to allocate IP for "default/mover": ["10.9.9.9"] is not allowed in config'
    assert [(e.reason, e.message) for e in out["default/mover"].events] == [("AllocationFailed", failed)] * 2
    assert reasons(out["default/waiter"].events) == ["IPAllocated"]


def test_prefer_dual_stack_with_one_ip_reports_again_after_its_own_write() -> None:
    """convergeBalancer's PreferDualStack branch runs on every convergence with one IP; the controller's status
    write comes back as a watch event and converges the Service once more (controller-runtime's Service watch).
    """
    a = Allocator(config(pool("v4only", "10.0.0.0/30")))
    out = converge_all(a, [svc("web", cluster_ips=DUAL, policy="PreferDualStack")])
    o = out["default/web"]
    assert o.ok and o.service.ingress == ("10.0.0.0",)
    assert reasons(o.events) == ["IPAllocated", "AdditionalAssignFailed"]
    message = o.events[1].message
    assert message.startswith("cannot assign additional IP in PreferDualStack: no available IPs in pool v4only")
    assert "<nil>" not in message  # MetalLB's %s of a nil IP; ironlb names the pool instead


def test_prefer_dual_stack_already_written_reports_once_per_convergence() -> None:
    """Restarted with the IP and the pool annotation already written: one convergence, one event, no write."""
    a = Allocator(config(pool("v4only", "10.0.0.0/30")))
    held = svc("web", cluster_ips=DUAL, policy="PreferDualStack", ingress=("10.0.0.0",),
               annotations={POOL_ANNOTATION: "v4only"})  # fmt: skip
    out = converge_all(a, [held])
    assert reasons(out["default/web"].events) == ["AdditionalAssignFailed"]


def test_deprecated_annotations_warn_when_a_stale_ingress_is_cleared() -> None:
    """SetBalancer warns for every ``metallb.universe.tf/`` annotation whenever it writes the Service, also when
    the write only clears an ingress no pool allows any more (and the Service cannot get a new IP). That write
    converges it once more: the failure is reported again, without a warning (nothing left to write)."""
    a = Allocator(config(pool("p", "10.0.0.0/32")))
    holder = at(svc("holder", ingress=("10.0.0.0",), annotations={POOL_ANNOTATION: "p"}), "2024-01-01T00:00:00Z")
    deprecated = {"metallb.universe.tf/allow-shared-ip": "k"}
    stale = at(svc("stale", ingress=("10.9.9.9",), annotations=deprecated), "2024-02-01T00:00:00Z")
    out = converge_all(a, [holder, stale])
    assert reasons(out["default/stale"].events) == [
        "ClearAssignment", "AllocationFailed", "deprecatedAnnotation", "AllocationFailed"
    ]  # fmt: skip
    assert out["default/stale"].events[2].type == "Warning"
    assert out["default/stale"].events[2].message == (
        "Service uses deprecated annotation metallb.universe.tf/allow-shared-ip"
    )


def test_deprecated_annotations_are_quiet_when_nothing_is_written() -> None:
    """No write, no warning, even when convergence reported something (MetalLB's ``reflect.DeepEqual`` check)."""
    a = Allocator(config(pool("p", "10.0.0.0/32")))
    deprecated = {"metallb.universe.tf/address-pool": "p"}
    out = converge_all(a, [at(svc("first"), "2024-01-01T00:00:00Z"),
                           at(svc("late", annotations=deprecated), "2024-02-01T00:00:00Z")])  # fmt: skip
    assert reasons(out["default/late"].events) == ["AllocationFailed"]
    held = svc("web", cluster_ips=DUAL, policy="PreferDualStack", ingress=("10.0.0.0",),
               annotations={**deprecated, POOL_ANNOTATION: "p"})  # fmt: skip
    out = converge_all(Allocator(config(pool("p", "10.0.0.0/32"))), [held])
    assert reasons(out["default/web"].events) == ["AdditionalAssignFailed"]
    # A write (here: the first allocation) warns once per deprecated annotation, after convergence's events.
    out = converge_all(Allocator(config(pool("p", "10.0.0.0/32"))), [svc("new", annotations=deprecated)])
    assert reasons(out["default/new"].events) == ["IPAllocated", "deprecatedAnnotation"]


def test_reconciles_wait_for_the_first_clean_pass() -> None:
    """service_controller.go: per-Service reconciles are dropped until a reprocessAll pass needed no retry."""
    a = Allocator(config(pool("p", "10.0.0.0/30")))
    r = Reconciler(a)
    assert r.reconcile(svc("x")) is None and r.delete("default/x") is None
    done = r.reprocess_all([svc("local", etp="Local", selector={"app": "x"})])
    assert done.asks_again and r.finish(done) and not r.initial_load_done
    done = r.reprocess_all([replace(svc("local", etp="Local", selector={"app": "x"}), ingress=("10.0.0.0",))])
    assert not r.finish(done) and r.initial_load_done
    synced = r.reconcile(svc("x"))
    assert synced is not None and synced.state is SyncState.SUCCESS and synced.write
    assert r.delete("default/x") is SyncState.REPROCESS_ALL  # a deleted allocated Service frees room
    assert r.delete("default/x") is SyncState.SUCCESS


def test_a_failed_write_asks_for_another_pass() -> None:
    """reprocessAll: a SetBalancer that could not write (SyncStateError) retries the whole pass."""
    a = Allocator(config(pool("p", "10.0.0.0/30")))
    r = Reconciler(a)
    done = r.reprocess_all([svc("x")])
    assert not done.asks_again and r.finish(done, write_failed=True) and not r.initial_load_done


def test_class_filter_and_unchanged_services() -> None:
    """filterByLoadBalancerClass skips other classes; an unchanged Service is not written."""
    a = Allocator(config(pool("p", "10.0.0.0/30")))
    out = converge_all(a, [svc("mine"), svc("theirs", lb_class="example.com/other")])
    assert out["default/theirs"].ignored and out["default/theirs"].events == ()
    written = out["default/mine"].service
    again = set_balancer(a, written)
    assert not again.write and again.convergence.events == () and again.state is SyncState.SUCCESS


PLAN_STATE = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: one, namespace: metallb-system}
spec: {addresses: ["10.0.0.0/32"]}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: a, creationTimestamp: "2024-01-01T00:00:00Z",
           annotations: {metallb.universe.tf/allow-shared-ip: k}}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, selector: {app: x}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: late, namespace: a, creationTimestamp: "2024-02-01T00:00:00Z",
           annotations: {metallb.universe.tf/address-pool: one}}
spec: {type: LoadBalancer, ports: [{port: 80}]}
"""


def test_plan_shows_the_events_of_every_pass() -> None:
    """``ironlb plan`` runs the controller's schedule: ``local`` gets an allocation key (ETP Local and a sharing
    key), so a second pass repeats ``late``'s failure; ``local``'s write warns about its deprecated annotation,
    ``late`` (nothing written) does not."""
    from ironlb.config import load_texts
    from ironlb.plan import plan_snapshot, snapshot_from

    snapshot, _ = snapshot_from(load_texts([("state.yaml", PLAN_STATE)]))
    services = plan_snapshot(snapshot)["services"]
    assert [e["reason"] for e in services["a/local"]["events"]] == ["IPAllocated", "deprecatedAnnotation"]
    assert [e["reason"] for e in services["a/late"]["events"]] == ["AllocationFailed", "AllocationFailed"]
    assert services["a/late"]["events"][0]["message"] == 'Failed to allocate IP for "a/late": no available IPs in pool one'
