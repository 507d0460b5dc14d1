"""Which stops of the Kubernetes speaker are restarts (a hold, nothing moves) and which hand the IPs over."""

from __future__ import annotations

from typing import Any

import pytest

from ironlb.speaker.restart import node_going_away


def node(**over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "node1"},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        obj[section][field] = value
    return obj


def test_a_ready_schedulable_node_stays_up() -> None:
    assert node_going_away(node()) is None
    assert node_going_away(node(spec__taints=[{"key": "example.com/dedicated", "effect": "NoSchedule"}])) is None


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        (None, "unknown"),
        (node(metadata__deletionTimestamp="2026-12-07T18:00:00Z"), "deleted"),
        (node(spec__unschedulable=True), "cordoned"),
        (node(spec__taints=[{"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]), "out-of-service"),
        (node(spec__taints=[{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]), "Autoscaler"),
        (node(spec__taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]), "not-ready"),
        (node(status__conditions=[{"type": "Ready", "status": "Unknown"}]), "not Ready"),
        (node(status__conditions=[]), "not Ready"),
    ],
)
def test_a_node_going_away_or_unknown_hands_over(obj: dict[str, Any] | None, why: str) -> None:
    reason = node_going_away(obj)
    assert reason is not None and why in reason
