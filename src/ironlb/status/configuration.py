"""``ConfigurationState.status``: MetalLB's one condition per reconciler, ``result`` and ``errorSummary``.

Pure (the caller passes the time): the controller (condition ``poolReconcilerValid``) and every speaker
(``configReconcilerValid``) compute the status they want from their last config evaluation and write it only when it
differs from what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def desired_status(
    condition_type: str, config_error: str | None, current: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """The status for the latest evaluation; ``lastTransitionTime`` is ``now`` (UTC) unless the condition holds."""
    if config_error is None:
        status, reason, message = "True", "Reconciled", ""
    else:
        status, reason, message = "False", "ConfigurationError", f"configuration error: {config_error}"
    since = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    for cond in (current or {}).get("conditions") or []:
        if cond.get("type") == condition_type and cond.get("status") == status and cond.get("lastTransitionTime"):
            since = cond["lastTransitionTime"]
    condition = {
        "type": condition_type, "status": status, "reason": reason, "message": message, "lastTransitionTime": since,
    }
    out: dict[str, Any] = {"conditions": [condition], "result": "Valid" if status == "True" else "Invalid"}
    if message:
        out["errorSummary"] = message  # `json:"errorSummary,omitempty"` in MetalLB's ConfigurationStateStatus
    return out


def same_status(current: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """Whether writing ``want`` would change nothing a reader looks at."""
    if current.get("result") != want["result"] or current.get("errorSummary") != want.get("errorSummary"):
        return False
    conds = {c.get("type"): c for c in current.get("conditions") or []}
    for cond in want["conditions"]:
        have = conds.get(cond["type"])
        if have is None or any(have.get(k) != cond[k] for k in ("status", "reason", "message")):
            return False
    return True
