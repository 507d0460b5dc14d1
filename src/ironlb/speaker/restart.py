"""Is a stopping speaker restarting on a node that stays up (then nothing moves: a restart hold), or is the node
going away with it (then its IPs are handed over)?

A SIGTERM reaches the speaker for a rollout (``kubectl rollout restart``, a new image, ``kubectl delete pod``), and
also when the node is shut down (the kubelet's graceful node shutdown) or deleted. The node's own state tells them
apart, read from the API server once at the stop: the node stays up when it is Ready, not cordoned
(``spec.unschedulable``: a drain, an autoscaler scale-down), not being deleted, and carries none of the taints that
mean it is going away or is already unreachable. Anything else, or a Node that cannot be read, is a plain stop: the
IPs are handed over as before. A wrong "stays up" costs little: the stand-ins probe the node and end the hold in
about the dead timeout once its kernel stops answering.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["GOING_AWAY_TAINTS", "node_going_away"]

GOING_AWAY_TAINTS = frozenset({
    "node.kubernetes.io/unschedulable",
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/out-of-service",
    "node.cloudprovider.kubernetes.io/shutdown",
    "ToBeDeletedByClusterAutoscaler",
    "karpenter.sh/disrupted",
})  # fmt: skip
"""Taints (any effect) that say a node is being drained, shut down, deleted or is unreachable."""


def node_going_away(node: Mapping[str, Any] | None) -> str | None:
    """None if ``node`` (a Node object) stays up while its speaker restarts; else why it does not, for the log."""
    if not isinstance(node, Mapping):
        return "its Node is unknown"
    meta = node.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "its Node is being deleted"
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return "its Node is cordoned (unschedulable)"
    for taint in spec.get("taints") or ():
        if isinstance(taint, Mapping) and taint.get("key") in GOING_AWAY_TAINTS:
            return f"its Node has the taint {taint.get('key')}"
    conditions = (node.get("status") or {}).get("conditions") or ()
    ready = next((c for c in conditions if isinstance(c, Mapping) and c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True":
        return "its Node is not Ready"
    return None
