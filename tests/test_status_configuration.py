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
