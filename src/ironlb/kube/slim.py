"""Informer transforms: the slim copies of Kubernetes objects the controller's and the speaker's caches keep.

Each keeps only the fields the core reads (allocation, election, route planning, status writes), so that
caches of 10,000 Services stay small and kubelet heartbeats do not wake the speaker.
"""

from __future__ import annotations

import sys

from ironlb.kube.client import Obj

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_META_KEYS = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "labels", "annotations")
_SPEC_KEYS = ("type", "clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "loadBalancerIP",
              "loadBalancerClass", "externalTrafficPolicy", "selector")


def slim_service(obj: Obj) -> Obj:
    """Service informer transform: keep only what allocation, status writes and events read.

    A cached Service shrinks to about a third (no managedFields, kubectl's last-applied copy, node ports, ...),
    and repeated strings are interned; this is what keeps 10,000 Services well under the 150 MB budget.
    """
    intern = sys.intern
    meta = obj.get("metadata") or {}
    slim_meta = {k: meta[k] for k in _META_KEYS if k in meta}
    annotations = slim_meta.get("annotations")
    if isinstance(annotations, dict):
        slim_meta["annotations"] = {intern(k): v for k, v in annotations.items() if k != LAST_APPLIED}
    if "namespace" in slim_meta:
        slim_meta["namespace"] = intern(str(slim_meta["namespace"]))
    spec = obj.get("spec") or {}
    slim_spec = {k: spec[k] for k in _SPEC_KEYS if k in spec}
    for k in ("type", "ipFamilyPolicy", "externalTrafficPolicy"):
        if isinstance(slim_spec.get(k), str):
            slim_spec[k] = intern(slim_spec[k])
    if "ipFamilies" in slim_spec:
        slim_spec["ipFamilies"] = [intern(str(f)) for f in slim_spec["ipFamilies"] or []]
    ports = spec.get("ports")
    if ports:
        slim_spec["ports"] = [{"protocol": intern(str(p.get("protocol") or "TCP")), "port": p.get("port")}
                              for p in ports if isinstance(p, dict)]
    out: Obj = {"apiVersion": "v1", "kind": "Service", "metadata": slim_meta, "spec": slim_spec}
    lb = (obj.get("status") or {}).get("loadBalancer")
    if lb:
        out["status"] = {"loadBalancer": lb}
    return out


def slim_slice(obj: Obj) -> Obj:
    """EndpointSlice informer transform: only what the election and the route planner read."""
    meta = obj.get("metadata") or {}
    endpoints = [
        {k: ep[k] for k in ("addresses", "nodeName", "conditions") if k in ep}
        for ep in obj.get("endpoints") or []
        if isinstance(ep, dict)
    ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "resourceVersion") if k in meta},
        "endpoints": endpoints,
    }


def slim_node(obj: Obj) -> Obj:
    """Node informer transform: labels and the NetworkUnavailable condition (kubelet heartbeats change neither)."""
    meta = obj.get("metadata") or {}
    conditions = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "NetworkUnavailable"]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {k: meta[k] for k in ("name", "labels", "resourceVersion", "uid") if k in meta},
        "status": {"conditions": conditions},
    }


def slim_status(obj: Obj) -> Obj:
    """Status CR informer transform: the status plan reads names, labels and status only."""
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "resourceVersion") if k in meta},
        "status": obj.get("status") or {},
    }
