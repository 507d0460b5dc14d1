"""Builders for AdmissionReviews and metallb.io objects, and an in-memory stand-in for the REST API."""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from collections.abc import Mapping
from typing import Any

from ironlb.kube.client import ApiError
from tests.support.requestclient import RequestClient

NS = "metallb-system"
VERSIONS = {"BGPPeer": "v1beta2"}


def obj(kind: str, name: str, spec: dict[str, Any] | None = None, *, ns: str = NS,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": f"metallb.io/{VERSIONS.get(kind, 'v1beta1')}", "kind": kind, "metadata": meta,
            "spec": spec or {}}


def pool(name: str, *addresses: str, ns: str = NS, **spec: Any) -> dict[str, Any]:
    return obj("IPAddressPool", name, {"addresses": list(addresses), **spec}, ns=ns)


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def admission(op: str, new: dict[str, Any] | None, old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The AdmissionReview the apiserver sends for ``op`` on ``new`` (``old`` for UPDATE and DELETE)."""
    o = new or old
    assert o is not None
    group, version = o["apiVersion"].split("/")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": o["kind"]},
            "resource": {"group": group, "version": version, "resource": o["kind"].lower() + "s"},
            "name": o["metadata"]["name"],
            "namespace": o["metadata"].get("namespace", ""),
            "operation": op,
            "object": new,
            "oldObject": old,
        },
    }


class FakeApiError(ApiError):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__("FAKE", "", status, {"message": message})


class FakeApi(RequestClient):
    """Objects by path, resourceVersion conflicts, JSON and merge patches: enough for the cert code."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._rv = itertools.count(1)

    def put(self, path: str, o: dict[str, Any]) -> None:
        o = copy.deepcopy(o)
        o.setdefault("metadata", {})["resourceVersion"] = str(next(self._rv))
        self.objects[path] = o

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None,
                      content_type: str = "application/json", verb: str | None = None,
                      timeout: float | None = None) -> Any:
        self.calls.append((method, path))
        if method == "GET":
            if path in self.objects:
                return copy.deepcopy(self.objects[path])
            items = [copy.deepcopy(o) for p, o in self.objects.items() if p.rsplit("/", 1)[0] == path]
            if items:
                return {"items": items, "metadata": {}}
            raise FakeApiError(404)
        if method == "POST":
            target = f"{path}/{body['metadata']['name']}"
            if target in self.objects:
                raise FakeApiError(409, "exists")
            self.put(target, body)
            return copy.deepcopy(self.objects[target])
        if path not in self.objects:
            raise FakeApiError(404)
        current = self.objects[path]
        if method == "PUT":
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                raise FakeApiError(409, "conflict")
            self.put(path, body)
        elif method == "PATCH" and content_type == "application/json-patch+json":
            new = copy.deepcopy(current)
            for op in body:
                keys: list[Any] = [int(k) if k.isdigit() else k for k in op["path"].strip("/").split("/")]
                *parents, last = keys
                node: Any = new
                for key in parents:
                    node = node[key]
                if op["op"] == "test":
                    if node[last] != op["value"]:
                        raise FakeApiError(422, "test failed")
                else:
                    node[last] = op["value"]
            self.put(path, new)
        elif method == "PATCH":
            self.put(path, _merge(copy.deepcopy(current), body))
        else:
            raise AssertionError(method)
        return copy.deepcopy(self.objects[path])


def _merge(a: Any, b: Any) -> Any:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return b
    for k, v in b.items():
        if v is None:
            a.pop(k, None)
        else:
            a[k] = _merge(a.get(k), v)
    return a


def dumps(o: Any) -> bytes:
    return json.dumps(o).encode()
