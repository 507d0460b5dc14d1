"""The validating admission webhooks of the six ``metallb.io`` config kinds, as one pure function.

``review(admission_review, existing, namespace=...)`` answers an ``admission.k8s.io/v1`` AdmissionReview the way
MetalLB's webhooks (``internal/k8s/webhooks/*``) do:

- a CREATE outside ironlb's namespace is denied: ``resource must be created in <ns> namespace``;
- otherwise the new object replaces (UPDATE) or joins (CREATE) the existing objects of its kind, together with the
  kinds MetalLB validates it with (:data:`VALIDATED_WITH`), and the whole set goes through the same builder as the
  running configuration (:func:`ironlb.config.build`), so the messages are the config's, with MetalLB's wording;
- before that, dangling references are dropped as MetalLB's ``resetTransientErrorsFields`` does (a peer's
  ``bfdProfile`` and ``passwordSecret``, a BGPAdvertisement's community aliases): they become valid later and show
  up in ConfigurationState, never as a rejection;
- a BGPPeer CREATE with ``disableMP`` is allowed with MetalLB's deprecation warning and nothing else checked;
- deleting a BFDProfile that a BGPPeer uses is denied: ``failed to delete BFDProfile <p>, used by BGPPeer <peer>``.

Where ironlb differs, on purpose, so that a webhook never blocks more than it must (metallb#1540):

- a problem that the existing objects already had without this request does not deny it; it comes back as a
  warning (MetalLB denies every change of the kind until someone fixes the other object);
- an UPDATE that leaves ``spec`` alone (labels, annotations, finalizers) is allowed without a look, and so is an
  UPDATE of an object outside ironlb's namespace (ironlb ignores such objects: they can only be cleaned up);
- a BFDProfile CREATE goes through the same validation as the other kinds, where MetalLB's webhook checks only its
  namespace (the CRD schema's ranges refuse the same values first, so in practice both accept the same profiles).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ironlb.config import ConfigError, build, load_objects
from ironlb.config.models import ResourceError, parse_resource

Obj = dict[str, Any]

GROUP = "metallb.io"
DISABLE_MP_WARNING = "disable mp is deprecated and has no effect since it's the default behavior now"
MAX_WARNINGS = 10  # the apiserver truncates long warning lists; the first ones say enough

# path -> (kind, version): MetalLB's paths (config/webhook/manifests.yaml).
PATHS: dict[str, tuple[str, str]] = {
    "/validate-metallb-io-v1beta1-ipaddresspool": ("IPAddressPool", "v1beta1"),
    "/validate-metallb-io-v1beta2-bgppeer": ("BGPPeer", "v1beta2"),
    "/validate-metallb-io-v1beta1-bgpadvertisement": ("BGPAdvertisement", "v1beta1"),
    "/validate-metallb-io-v1beta1-l2advertisement": ("L2Advertisement", "v1beta1"),
    "/validate-metallb-io-v1beta1-community": ("Community", "v1beta1"),
    "/validate-metallb-io-v1beta1-bfdprofile": ("BFDProfile", "v1beta1"),
}

# kind -> (webhook name, resource plural, operations): the ValidatingWebhookConfiguration entries.
WEBHOOKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "IPAddressPool": ("ipaddresspoolvalidationwebhook.metallb.io", "ipaddresspools", ("CREATE", "UPDATE")),
    "BGPPeer": ("bgppeervalidationwebhook.metallb.io", "bgppeers", ("CREATE", "UPDATE")),
    "BGPAdvertisement": ("bgpadvertisementvalidationwebhook.metallb.io", "bgpadvertisements", ("CREATE", "UPDATE")),
    "L2Advertisement": ("l2advertisementvalidationwebhook.metallb.io", "l2advertisements", ("CREATE", "UPDATE")),
    "Community": ("communityvalidationwebhook.metallb.io", "communities", ("CREATE", "UPDATE")),
    "BFDProfile": ("bfdprofilevalidationwebhook.metallb.io", "bfdprofiles", ("CREATE", "DELETE")),
}

# kind -> the kinds its objects are validated with (MetalLB's table; the kind itself first).
VALIDATED_WITH: dict[str, tuple[str, ...]] = {
    "IPAddressPool": ("IPAddressPool",),
    "L2Advertisement": ("L2Advertisement", "IPAddressPool"),
    "BGPAdvertisement": ("BGPAdvertisement", "IPAddressPool", "Node"),
    "BGPPeer": ("BGPPeer", "Node"),
    "Community": ("Community",),
    "BFDProfile": ("BFDProfile",),
}

# kind -> (apiVersion, plural, namespaced): where the lister finds them.
LISTED: dict[str, tuple[str, str, bool]] = {
    "IPAddressPool": (f"{GROUP}/v1beta1", "ipaddresspools", True),
    "L2Advertisement": (f"{GROUP}/v1beta1", "l2advertisements", True),
    "BGPAdvertisement": (f"{GROUP}/v1beta1", "bgpadvertisements", True),
    "BGPPeer": (f"{GROUP}/v1beta2", "bgppeers", True),
    "Community": (f"{GROUP}/v1beta1", "communities", True),
    "BFDProfile": (f"{GROUP}/v1beta1", "bfdprofiles", True),
    "Node": ("v1", "nodes", False),
}


@dataclass(frozen=True)
class Admission:
    """What the webhook answers: allowed or not, the message of a denial, and warnings."""

    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of an AdmissionReview request the decision reads (``old`` is the stored object)."""

    uid: str
    kind: str
    operation: str
    name: str
    namespace: str
    obj: Obj | None
    old: Obj | None


def kinds_to_list(kind: str, operation: str) -> tuple[str, ...]:
    """The kinds :func:`decide` needs listed from the API for this request (so a server lists nothing more)."""
    if operation == "DELETE":
        return ("BGPPeer",) if kind == "BFDProfile" else ()
    if operation in ("CREATE", "UPDATE"):
        return VALIDATED_WITH.get(kind, ())
    return ()


def parse_request(admission_review: Mapping[str, Any]) -> AdmissionRequest:
    """The parts of an AdmissionReview request the decision needs; ValueError if it is not one."""
    if admission_review.get("kind") != "AdmissionReview":
        raise ValueError("not an AdmissionReview")
    req = admission_review.get("request")
    if not isinstance(req, dict):
        raise ValueError("AdmissionReview without a request")
    kind = req.get("kind") or {}
    obj = req.get("object") if isinstance(req.get("object"), dict) else None
    old = req.get("oldObject") if isinstance(req.get("oldObject"), dict) else None
    meta = (obj or old or {}).get("metadata") or {}
    return AdmissionRequest(
        uid=str(req.get("uid", "")),
        kind=str(kind.get("kind", "")),
        operation=str(req.get("operation", "")),
        name=str(req.get("name") or meta.get("name") or ""),
        namespace=str(req.get("namespace") or meta.get("namespace") or ""),
        obj=obj,
        old=old,
    )


def review(
    admission_review: Mapping[str, Any], existing: Mapping[str, Sequence[Obj]], *, namespace: str = "metallb-system"
) -> Obj:
    """An AdmissionReview request and the listed objects (kind -> objects) -> the AdmissionReview response."""
    try:
        req = parse_request(admission_review)
    except ValueError as err:
        return response("", Admission(False, f"bad admission request: {err}"))
    return response(req.uid, decide(req, existing, namespace=namespace))


def response(uid: str, decision: Admission) -> Obj:
    """The ``admission.k8s.io/v1`` AdmissionReview carrying ``decision`` (a denial is 403 Forbidden, as
    controller-runtime answers)."""
    resp: Obj = {"uid": uid, "allowed": decision.allowed}
    if not decision.allowed:
        resp["status"] = {"code": 403, "reason": "Forbidden", "message": decision.message}
    if decision.warnings:
        resp["warnings"] = list(decision.warnings[:MAX_WARNINGS])
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}


def decide(req: AdmissionRequest, existing: Mapping[str, Sequence[Obj]], *, namespace: str) -> Admission:
    """MetalLB's ValidateCreate / ValidateUpdate / ValidateDelete for ``req.kind`` (see the module docstring)."""
    if req.kind not in VALIDATED_WITH:
        return Admission(False, f"ironlb does not validate kind {req.kind!r}")
    if req.operation == "DELETE":
        return _delete(req, existing, namespace)
    if req.operation not in ("CREATE", "UPDATE"):
        return Admission(True)
    if req.obj is None:  # the apiserver always sends it: a review without one was not written by the apiserver
        return Admission(False, f"bad admission request: {req.operation} without request.object")
    obj = req.obj
    obj_ns = str((obj.get("metadata") or {}).get("namespace") or req.namespace)
    if req.operation == "CREATE" and obj_ns != namespace:
        return Admission(False, f"resource must be created in {namespace} namespace")
    if req.operation == "UPDATE":
        if obj_ns != namespace:
            return Admission(True)  # not part of ironlb's configuration; let it be fixed or cleaned up
        if req.old is not None and req.old.get("spec") == obj.get("spec"):
            return Admission(True)
    if req.kind == "BGPPeer" and req.operation == "CREATE" and (obj.get("spec") or {}).get("disableMP"):
        return Admission(True, warnings=(DISABLE_MP_WARNING,))  # MetalLB returns here, before any other check
    return _validate_with_existing(req.kind, obj, existing, namespace)


def _delete(req: AdmissionRequest, existing: Mapping[str, Sequence[Obj]], namespace: str) -> Admission:
    if req.kind != "BFDProfile" or req.namespace != namespace:
        return Admission(True)
    for peer in sorted(existing.get("BGPPeer", ()), key=_name):
        if (peer.get("spec") or {}).get("bfdProfile") == req.name:
            return Admission(False, f"failed to delete BFDProfile {req.name}, used by BGPPeer {_name(peer)}")
    return Admission(True)


def _validate_with_existing(kind: str, obj: Obj, existing: Mapping[str, Sequence[Obj]], namespace: str) -> Admission:
    """Validate the set with ``obj`` in it; deny only for problems the set without it did not already have."""
    new = _with_kind(obj, kind)
    try:
        parse_resource(reset_transient(new))
    except ResourceError as err:
        return Admission(False, "\n".join(err.messages))
    others: list[Obj] = []
    for k in VALIDATED_WITH[kind]:
        for item in existing.get(k, ()):
            item = _with_kind(item, k)
            if k == kind and _name(item) == _name(new):
                continue  # the stored version of the object being updated
            others.append(item)
    before, _ = _problems(others, namespace)
    after, warnings = _problems([*others, new], namespace)
    added = [m for m in after if m not in before]
    ref = f'{kind} "{_name(new)}"'
    own_warnings = [w for w in warnings if w.startswith(ref)]
    old_problems = [f"the existing configuration is already invalid: {m}" for m in before]
    if added:
        return Admission(False, "\n".join(added), tuple(old_problems))
    return Admission(True, warnings=tuple(own_warnings + old_problems))


def _problems(objects: list[Obj], namespace: str) -> tuple[list[str], tuple[str, ...]]:
    """The config builder's error messages (and warnings) for ``objects``; objects the schema refuses are
    reported and left out, so one of them does not hide the others' problems."""
    good: list[Obj] = []
    errors: list[str] = []
    for obj in objects:
        obj = reset_transient(obj)
        if obj.get("kind") != "Node":
            try:
                parse_resource(obj)
            except ResourceError as err:
                errors.extend(err.messages)
                continue
        good.append(obj)
    try:
        result = build(load_objects(good, default_namespace=namespace), namespace=namespace)
    except ConfigError as err:
        return errors + list(err.messages), ()
    return errors, result.warnings


def reset_transient(obj: Obj) -> Obj:
    """MetalLB's ``resetTransientErrorsFields``: drop the references that may dangle for a while (a copy)."""
    kind = obj.get("kind")
    if kind not in ("BGPPeer", "BGPAdvertisement"):
        return obj
    out = copy.deepcopy(obj)
    spec = out.get("spec")
    if not isinstance(spec, dict):
        return out
    if kind == "BGPPeer":
        spec.pop("bfdProfile", None)
        spec.pop("passwordSecret", None)
    elif isinstance(spec.get("communities"), list):
        spec["communities"] = [c for c in spec["communities"] if not isinstance(c, str) or ":" in c]
    return out


def _with_kind(obj: Obj, kind: str) -> Obj:
    """List items of core kinds come without apiVersion/kind; the loader needs both."""
    if obj.get("kind") and obj.get("apiVersion"):
        return obj
    api_version = LISTED[kind][0] if kind in LISTED else ""
    return {**obj, "apiVersion": obj.get("apiVersion") or api_version, "kind": kind}


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


__all__ = [
    "DISABLE_MP_WARNING",
    "LISTED",
    "PATHS",
    "VALIDATED_WITH",
    "WEBHOOKS",
    "Admission",
    "AdmissionRequest",
    "decide",
    "kinds_to_list",
    "parse_request",
    "reset_transient",
    "response",
    "review",
]
