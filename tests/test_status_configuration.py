"""ConfigurationState status: pure, the time comes from the caller."""

from __future__ import annotations

from datetime import UTC, datetime

from ironlb.status.configuration import desired_status, same_status

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2026, 1, 2, 9, 0, 0, tzinfo=UTC)


def test_transition_time_is_now_then_kept_while_the_condition_holds() -> None:
    valid = desired_status("poolReconcilerValid", None, None, T0)
    assert valid["result"] == "Valid" and "errorSummary" not in valid  # omitempty, as MetalLB writes it
    assert not same_status({**valid, "errorSummary": ""}, valid)  # an empty summary written before is removed
    assert valid["conditions"][0]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    again = desired_status("poolReconcilerValid", None, valid, T1)
    assert again["conditions"][0]["lastTransitionTime"] == "2026-01-02T03:04:05Z" and same_status(valid, again)
    broken = desired_status("poolReconcilerValid", "bad pool", valid, T1)
    assert broken["result"] == "Invalid" and broken["errorSummary"] == "configuration error: bad pool"
    assert broken["conditions"][0]["lastTransitionTime"] == "2026-01-02T09:00:00Z" and not same_status(valid, broken)


def test_each_later_pod_is_added_to_the_owners() -> None:
    # MetalLB's ConfigurationStateReconciler: controllerutil.SetOwnerReference (upsertOwnerRef/referSameObject):
    # the same API group, kind and name is the same owner (its reference is replaced: a new UID); else appended.
    from ironlb.kube.configstate import upsert_owner

    def pod(name: str, uid: str) -> dict[str, str]:
        return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}

    owners = upsert_owner([], pod("c-1", "u1"))
    assert owners == [pod("c-1", "u1")]
    owners = upsert_owner(owners, pod("c-2", "u2"))
    assert owners == [pod("c-1", "u1"), pod("c-2", "u2")]
    assert upsert_owner(owners, pod("c-1", "u3")) == [pod("c-1", "u3"), pod("c-2", "u2")]
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "c-1", "uid": "d"}
    assert upsert_owner([deploy], pod("c-1", "u1")) == [deploy, pod("c-1", "u1")]
    assert upsert_owner([deploy], {**deploy, "apiVersion": "apps/v1beta2", "uid": "e"}) == [
        {**deploy, "apiVersion": "apps/v1beta2", "uid": "e"}
    ]
