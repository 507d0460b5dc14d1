"""The one ConfigurationState writer, for the controller and every speaker (MetalLB's
``configuration_state_controller.go`` serves both binaries the same way).

Each component owns one object (``controller``, ``speaker-<node>``) with its labels, its condition type and its
field manager; it is created with its metadata (owned by the component's Pod when known; each later Pod of the
component adds its own reference, as MetalLB's ``SetOwnerReference`` does), then its status is applied whenever
the latest configuration evaluation changes what a reader sees. The status itself is computed by
the pure :mod:`ironlb.status.configuration`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ironlb.kube.client import CONFIGURATION_STATES, PODS, KubeClient, KubeError
from ironlb.kube.informer import Informer
from ironlb.status.configuration import desired_status, same_status

log = logging.getLogger(__name__)

Obj = dict[str, Any]


async def pod_owner(client: KubeClient, name: str, namespace: str) -> Obj | None:
    """An ownerReference to the Pod ``name`` (MetalLB's SetOwnerReference on its own Pod); None if unreadable."""
    try:
        pod = await client.get(PODS, name, namespace)
    except KubeError as err:
        log.warning("cannot read pod %s for the ConfigurationState owner: %s", name, err)
        return None
    return owner_reference(pod)


def owner_reference(pod: Mapping[str, Any]) -> Obj:
    meta = pod.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"), "uid": meta.get("uid")}


def _same_object(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """controller-runtime's referSameObject: same API group, kind and name (the UID may differ)."""
    group_a, group_b = (str(r.get("apiVersion") or "").rpartition("/")[0] for r in (a, b))
    return group_a == group_b and a.get("kind") == b.get("kind") and a.get("name") == b.get("name")


def upsert_owner(owners: list[Obj], owner: Obj) -> list[Obj]:
    """MetalLB's ``controllerutil.SetOwnerReference``: replace the reference to the same object, else append.

    So each later Pod of a component (a restart, a rollout) adds itself beside the earlier ones, which stay until
    Kubernetes' garbage collector drops the references to deleted Pods; a Pod recreated under the same name
    replaces its old reference (new UID).
    """
    out = [dict(o) for o in owners]
    for i, o in enumerate(out):
        if _same_object(o, owner):
            out[i] = dict(owner)
            return out
    return [*out, dict(owner)]


class ConfigurationStateWriter:
    """Writes one component's ConfigurationState from its latest config evaluation, only when it changed."""

    def __init__(
        self,
        client: KubeClient,
        informer: Informer,
        *,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        condition_type: str,
        field_manager: str,
        create_manager: str,
    ) -> None:
        self.client = client
        self.informer = informer  # watches this one object (a field selector on its name)
        self.namespace = namespace
        self.name = name
        self.labels = dict(labels)
        self.condition_type = condition_type
        self.field_manager = field_manager  # of the status, MetalLB's reconciler name
        self.create_manager = create_manager  # of the metadata
        self.owner: Obj | None = None

    def current(self) -> Obj | None:
        return self.informer.store.get(f"{self.namespace}/{self.name}")

    def desired(self, config_error: str | None) -> dict[str, Any]:
        """The status for the latest evaluation (``None``: the configuration is valid)."""
        current = self.current()
        return desired_status(self.condition_type, config_error, (current or {}).get("status"), datetime.now(UTC))

    def _metadata(self, current: Obj | None) -> Obj | None:
        """The metadata to apply: on creation, or when our labels or our Pod's ownerReference are missing.

        MetalLB's reconciler sets both on every pass (CreateOrPatch), so a later Pod of the component adds its
        reference to an existing object instead of leaving only its predecessor's.
        """
        meta = (current or {}).get("metadata") or {}
        have: list[Obj] = [o for o in meta.get("ownerReferences") or [] if isinstance(o, dict)]
        owners = upsert_owner(have, self.owner) if self.owner else have
        labels = meta.get("labels") or {}
        if current is not None and owners == have and all(labels.get(k) == v for k, v in self.labels.items()):
            return None
        out: Obj = {"name": self.name, "namespace": self.namespace, "labels": dict(self.labels)}
        if owners:
            out["ownerReferences"] = owners
        return out

    async def write(self, config_error: str | None) -> bool:
        """Create the object if missing (or bring its labels and owner up to date), then apply the status if it
        changed; True when something was written."""
        current = self.current()
        want = self.desired(config_error)
        wrote = False
        meta = self._metadata(current)
        if meta is not None:
            applied = await self.client.apply(CONFIGURATION_STATES, {"metadata": meta},
                                              field_manager=self.create_manager)
            self.informer.put_local(applied)
            wrote = True
        if current is not None and same_status(current.get("status") or {}, want):
            return wrote
        written = await self.client.apply(
            CONFIGURATION_STATES, {"metadata": {"name": self.name, "namespace": self.namespace}, "status": want},
            field_manager=self.field_manager, subresource="status",
        )
        self.informer.put_local(written)
        return True


__all__ = ["ConfigurationStateWriter", "owner_reference", "pod_owner", "upsert_owner"]
