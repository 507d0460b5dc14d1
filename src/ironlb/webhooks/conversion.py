"""The BGPPeer conversion webhook (``/convert``): ``apiextensions.k8s.io/v1`` ConversionReview, as a pure function.

v1beta2 is the hub and storage version. Like MetalLB's ``api/v1beta1/bgppeer_conversion.go``:

- v1beta1 -> v1beta2 keeps every field; v1beta1's own node selector type (``matchLabels`` and ``matchExpressions``
  of ``{key, operator, values}``) becomes a ``metav1.LabelSelector``, which has the same JSON;
- v1beta2 -> v1beta1 drops the fields v1beta1 does not have (:data:`V1BETA2_ONLY`).

``metadata`` and ``status`` are passed through untouched: the apiserver refuses a conversion that changes metadata
other than labels and annotations.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]

GROUP = "metallb.io"
V1BETA1 = f"{GROUP}/v1beta1"
V1BETA2 = f"{GROUP}/v1beta2"
VERSIONS = (V1BETA1, V1BETA2)

V1BETA2_ONLY = (
    "dynamicASN",
    "interface",
    "passwordSecret",
    "connectTime",
    "vrf",
    "enableGracefulRestart",
    "disableMP",
    "dualStackAddressFamily",
    "localASN",
)


class ConversionError(ValueError):
    """An object this webhook cannot convert (another kind, or an unknown version)."""


def convert_bgppeer(obj: Mapping[str, Any], desired_api_version: str) -> Obj:
    """One BGPPeer at ``desired_api_version`` (a deep copy; the input is not changed)."""
    kind = obj.get("kind")
    current = obj.get("apiVersion")
    if kind != "BGPPeer":
        raise ConversionError(f"cannot convert kind {kind!r}: only BGPPeer is converted")
    if current not in VERSIONS:
        raise ConversionError(f"cannot convert BGPPeer from unknown apiVersion {current!r}")
    if desired_api_version not in VERSIONS:
        raise ConversionError(f"cannot convert BGPPeer to unknown apiVersion {desired_api_version!r}")
    out = copy.deepcopy(dict(obj))
    out["apiVersion"] = desired_api_version
    if current == desired_api_version:
        return out
    spec = out.get("spec")
    if isinstance(spec, dict):
        if desired_api_version == V1BETA1:
            spec = {k: v for k, v in spec.items() if k not in V1BETA2_ONLY}
        if "nodeSelectors" in spec:
            spec["nodeSelectors"] = _selectors(spec["nodeSelectors"])
        out["spec"] = spec
    return out


def _selectors(value: Any) -> Any:
    """Node selectors in either version: only ``matchLabels`` and ``matchExpressions{key,operator,values}``."""
    if not isinstance(value, list):
        return value
    out = []
    for sel in value:
        if not isinstance(sel, dict):
            out.append(sel)
            continue
        converted: Obj = {}
        if "matchLabels" in sel:
            converted["matchLabels"] = sel["matchLabels"]
        if "matchExpressions" in sel:
            exprs = sel["matchExpressions"]
            converted["matchExpressions"] = [
                {k: e[k] for k in ("key", "operator", "values") if k in e} if isinstance(e, dict) else e
                for e in exprs
            ] if isinstance(exprs, list) else exprs
        out.append(converted)
    return out


def convert_review(conversion_review: Mapping[str, Any]) -> Obj:
    """A ConversionReview request -> the ConversionReview response (``Failure`` with a message on bad input)."""
    req = conversion_review.get("request")
    api_version = str(conversion_review.get("apiVersion") or "apiextensions.k8s.io/v1")
    if conversion_review.get("kind") != "ConversionReview" or not isinstance(req, dict):
        return _review(api_version, "", [], "not a ConversionReview request")
    uid = str(req.get("uid", ""))
    desired = str(req.get("desiredAPIVersion", ""))
    converted = []
    try:
        for obj in req.get("objects") or []:
            if not isinstance(obj, dict):
                raise ConversionError("an object to convert is not a JSON object")
            converted.append(convert_bgppeer(obj, desired))
    except ConversionError as err:
        return _review(api_version, uid, [], str(err))
    return _review(api_version, uid, converted, "")


def _review(api_version: str, uid: str, objects: list[Obj], failure: str) -> Obj:
    result: Obj = {"status": "Failure", "message": failure} if failure else {"status": "Success"}
    return {
        "apiVersion": api_version,
        "kind": "ConversionReview",
        "response": {"uid": uid, "convertedObjects": objects, "result": result},
    }


__all__ = ["V1BETA1", "V1BETA2", "V1BETA2_ONLY", "ConversionError", "convert_bgppeer", "convert_review"]
