"""ServiceL2Status and ServiceBGPStatus as MetalLB's speaker writes them (reference 1.3), planned purely.

Both live in ironlb's namespace, are created with ``generateName`` (``l2-`` / ``bgp-``), carry the labels
``metallb.io/node``, ``metallb.io/service-name`` and ``metallb.io/service-namespace``, and are owned by the
speaker Pod. Their ``status`` is a subresource, so a new one is a create followed by a status write.

- L2: only the winning node keeps one per Service. A node that does not announce deletes its own; the winner
  also deletes the ones other nodes left behind (a node that died cannot) and any duplicates.
- BGP: one per (Service, node) with the sorted BGPPeer names the Service goes to; deleted when that set is
  empty. A node only ever touches its own.

:func:`plan_actions` compares the desired state with the cached objects and returns what to do; the shell
executes it and plans again from the refreshed cache, so a failed or raced write is simply redone.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NODE_LABEL = "metallb.io/node"
SERVICE_NAME_LABEL = "metallb.io/service-name"
SERVICE_NAMESPACE_LABEL = "metallb.io/service-namespace"

L2 = "l2"
BGP = "bgp"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Create:
    kind: str  # L2 or BGP
    service: str  # ns/name
    status: Mapping[str, Any]


@dataclass(frozen=True)
class WriteStatus:
    kind: str
    name: str
    status: Mapping[str, Any]


@dataclass(frozen=True)
class Delete:
    kind: str
    name: str


Action = Create | WriteStatus | Delete


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return ((obj.get("metadata") or {}).get("labels")) or {}


def service_of(obj: Mapping[str, Any]) -> str | None:
    labels = labels_of(obj)
    ns, name = labels.get(SERVICE_NAMESPACE_LABEL), labels.get(SERVICE_NAME_LABEL)
    return f"{ns}/{name}" if ns and name else None


def name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def desired_status(kind: str, node: str, service: str, detail: Iterable[str]) -> dict[str, Any]:
    ns, _, name = service.partition("/")
    status: dict[str, Any] = {"node": node, "serviceName": name, "serviceNamespace": ns}
    if kind == L2:
        status["interfaces"] = [{"name": i} for i in detail]
    else:
        status["peers"] = sorted(detail)
    return status


def _same(current: Mapping[str, Any] | None, want: Mapping[str, Any]) -> bool:
    current = current or {}
    for key, value in want.items():
        have = current.get(key)
        if key in ("interfaces", "peers"):
            if (have or []) != value:
                return False
        elif have != value:
            return False
    return True


def plan_actions(
    kind: str, node: str, desired: Mapping[str, Iterable[str]], existing: Iterable[Mapping[str, Any]]
) -> list[Action]:
    """What to create, rewrite and delete so the cache matches ``desired`` (service key -> interfaces/peers)."""
    want = {svc: desired_status(kind, node, svc, detail) for svc, detail in desired.items()}
    actions: list[Action] = []
    mine: dict[str, list[Mapping[str, Any]]] = {}
    for obj in sorted(existing, key=name_of):
        svc = service_of(obj)
        owner = labels_of(obj).get(NODE_LABEL)
        if owner == node:
            if svc is None or svc not in want:
                actions.append(Delete(kind, name_of(obj)))
            else:
                mine.setdefault(svc, []).append(obj)
        elif kind == L2 and svc is not None and svc in want:
            actions.append(Delete(kind, name_of(obj)))  # the winner cleans up after other nodes
    for svc, status in want.items():
        objs = mine.get(svc, [])
        if not objs:
            actions.append(Create(kind, svc, status))
            continue
        keep, *extra = objs
        actions.extend(Delete(kind, name_of(o)) for o in extra)
        if not _same(keep.get("status"), status):
            actions.append(WriteStatus(kind, name_of(keep), status))
    return actions


def plan_changes(
    kind: str,
    node: str,
    desired: Mapping[str, tuple[str, ...]],
    previous: Mapping[str, tuple[str, ...]],
    dirty: Collection[str],
    existing: Iterable[Mapping[str, Any]],
) -> list[Action]:
    """:func:`plan_actions` for the Services whose desired status changed since ``previous`` or whose objects
    changed (``dirty``): what the full plan would do when the rest already matches ``previous``."""
    some = {*dirty, *(key for key, _ in desired.items() ^ previous.items())}
    if not some:
        return []
    mine = [o for o in existing if service_of(o) in some]
    return plan_actions(kind, node, {k: desired[k] for k in some if k in desired}, mine)


def new_object(kind: str, node: str, service: str, namespace: str, owner: Mapping[str, Any] | None) -> Obj:
    """The metadata of a new status object (its status is written next, through the subresource)."""
    svc_ns, _, svc_name = service.partition("/")
    meta: Obj = {
        "generateName": "l2-" if kind == L2 else "bgp-",
        "namespace": namespace,
        "labels": {NODE_LABEL: node, SERVICE_NAME_LABEL: svc_name, SERVICE_NAMESPACE_LABEL: svc_ns},
    }
    if owner:
        meta["ownerReferences"] = [dict(owner)]
    return {"metadata": meta}
