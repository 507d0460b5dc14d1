"""Reading resource files: multi-document YAML, ``kind: List``, CRDs, the legacy ConfigMap and the rest.

One loader serves ``validate``, ``convert`` and ``plan``: the ``metallb.io`` objects (and the legacy
ConfigMap, converted with MetalLB's rules) become typed models; every other object is kept as its raw
dict in ``Resources.others`` (Services, Nodes, EndpointSlices, Namespaces, Secrets, ...), in input order.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from ironlb.config import yamlio
from ironlb.config.errors import ConfigError, goq
from ironlb.config.models import (
    GROUP,
    IGNORED_KINDS,
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    Community,
    IPAddressPool,
    L2Advertisement,
    MetalLBResource,
    ResourceError,
    parse_resource,
)
from ironlb.config.reading import DEFAULT_LIMITS, ReadLimits, read_texts

BGP_EXTRAS_CONFIGMAP = "bgpextras"


@dataclass(frozen=True)
class SecretData:
    """The parts of a Secret that BGPPeer.passwordSecret needs (``data`` already base64-decoded)."""

    name: str
    namespace: str
    type: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class Resources:
    """Everything read from the input, ``metallb.io`` objects typed and the rest raw.

    Legacy ConfigMaps are already converted into the typed fields (and kept in ``legacy_configmaps``).
    """

    pools: tuple[IPAddressPool, ...] = ()
    l2_advertisements: tuple[L2Advertisement, ...] = ()
    bgp_advertisements: tuple[BGPAdvertisement, ...] = ()
    bgp_peers: tuple[BGPPeer, ...] = ()
    bfd_profiles: tuple[BFDProfile, ...] = ()
    communities: tuple[Community, ...] = ()
    legacy_configmaps: tuple[dict[str, Any], ...] = ()
    others: tuple[dict[str, Any], ...] = ()  # every non-metallb.io object, in input order
    notes: tuple[str, ...] = ()  # informational messages (e.g. from the legacy conversion)
    _origins: Mapping[int, str] = field(default_factory=dict, compare=False, repr=False)

    def of_kind(self, kind: str) -> tuple[dict[str, Any], ...]:
        """Raw objects of one kind from ``others`` (e.g. "Service", "Node", "EndpointSlice")."""
        return tuple(o for o in self.others if o.get("kind") == kind)

    @property
    def services(self) -> tuple[dict[str, Any], ...]:
        return self.of_kind("Service")

    @property
    def nodes(self) -> tuple[dict[str, Any], ...]:
        return self.of_kind("Node")

    @property
    def endpoint_slices(self) -> tuple[dict[str, Any], ...]:
        return self.of_kind("EndpointSlice")

    @property
    def namespaces(self) -> tuple[dict[str, Any], ...]:
        return self.of_kind("Namespace")

    @property
    def config_maps(self) -> tuple[dict[str, Any], ...]:
        return self.of_kind("ConfigMap")

    @property
    def bgp_extras(self) -> tuple[dict[str, Any], ...]:
        """ConfigMaps named ``bgpextras`` (MetalLB's raw FRR snippet), which ironlb refuses."""
        return tuple(c for c in self.config_maps if (c.get("metadata") or {}).get("name") == BGP_EXTRAS_CONFIGMAP)

    @property
    def secrets(self) -> tuple[SecretData, ...]:
        return tuple(_secret(s) for s in self.of_kind("Secret"))

    def origin(self, obj: object) -> str:
        """Where an object was read (``file: document N``), or "" for objects built in code."""
        return self._origins.get(id(obj), "")

    def all_metallb(self) -> tuple[MetalLBResource, ...]:
        return (
            *self.pools,
            *self.l2_advertisements,
            *self.bgp_advertisements,
            *self.bgp_peers,
            *self.bfd_profiles,
            *self.communities,
        )


def _legacy() -> ModuleType:
    """:mod:`ironlb.config.legacy`, imported on first use: its models cost start-up time few processes need."""
    from ironlb.config import legacy

    return legacy


def _secret(obj: Mapping[str, Any]) -> SecretData:
    meta = obj.get("metadata") or {}
    data: dict[str, str] = {}
    for key, value in (obj.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            data[str(key)] = str(value)
    # stringData is merged into data by the apiserver, winning on conflicts.
    for key, value in (obj.get("stringData") or {}).items():
        data[str(key)] = str(value)
    return SecretData(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "") or ""),
        type=str(obj.get("type") or "Opaque"),
        data=data,
    )


def _flatten(doc: Any) -> Iterable[Any]:
    """Expand ``kind: List`` (and ``<Kind>List``) into its items."""
    if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            yield from _flatten(item)
    else:
        yield doc


class _Builder:
    def __init__(self, default_namespace: str) -> None:
        self.default_namespace = default_namespace
        self.typed: dict[str, list[Any]] = {k: [] for k in _FIELDS.values()}
        self.legacy: list[dict[str, Any]] = []
        self.others: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.origins: dict[int, str] = {}

    def add(self, doc: Any, where: str) -> None:
        if doc is None:
            return
        if not isinstance(doc, dict):
            self.errors.append(f"{where}: expected a Kubernetes object (a mapping), got {type(doc).__name__}")
            return
        api_version = str(doc.get("apiVersion", ""))
        kind = doc.get("kind")
        if not kind:
            self.errors.append(f"{where}: object has no kind")
            return
        if api_version.split("/")[0] == GROUP:
            if kind in IGNORED_KINDS:
                return
            try:
                obj = parse_resource(doc)
            except ResourceError as err:
                self.errors.extend(f"{where}: {m}" for m in err.messages)
                return
            self.typed[_FIELDS[obj.KIND]].append(obj)
            self.origins[id(obj)] = where
            return
        if doc.get("kind") == "ConfigMap" and _legacy().is_legacy_configmap(doc):
            try:
                conversion = _legacy().convert_configmap(doc, self.default_namespace)
            except ConfigError as err:
                self.errors.extend(f"{where}: {m}" for m in err.messages)
                return
            self.legacy.append(doc)
            self.notes.extend(f"{where}: legacy ConfigMap: {n}" for n in conversion.notes)
            for i, converted in enumerate(conversion.documents):
                self.add(converted, f"{where} (legacy ConfigMap, converted object {i + 1})")
            return
        self.others.append(doc)

    def result(self) -> Resources:
        if self.errors:
            raise ConfigError(self.errors)
        return Resources(
            **{name: tuple(items) for name, items in self.typed.items()},
            legacy_configmaps=tuple(self.legacy),
            others=tuple(self.others),
            notes=tuple(self.notes),
            _origins=self.origins,
        )


_FIELDS = {
    "IPAddressPool": "pools",
    "L2Advertisement": "l2_advertisements",
    "BGPAdvertisement": "bgp_advertisements",
    "BGPPeer": "bgp_peers",
    "BFDProfile": "bfd_profiles",
    "Community": "communities",
}


def _documents(text: str, source: str, budget: yamlio.Budget) -> list[tuple[Any, str]]:
    try:
        docs = yamlio.load_all(text, budget)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: invalid YAML: {err}") from None
    out = []
    for n, doc in enumerate(docs, start=1):
        for item in _flatten(doc):
            meta = item.get("metadata") if isinstance(item, dict) else None
            name = meta.get("name") if isinstance(meta, dict) else None
            label = f"{source}: document {n}"
            if isinstance(item, dict) and item.get("kind"):
                label += f" ({item['kind']} {goq(name or '')})"
            out.append((item, label))
    return out


def load_objects(objects: Iterable[Any], *, default_namespace: str = "metallb-system") -> Resources:
    """Build Resources from already-parsed objects (dicts), e.g. from a live cluster listing."""
    builder = _Builder(default_namespace)
    for i, obj in enumerate(objects, start=1):
        for item in _flatten(obj):
            try:
                builder.add(item, f"object {i}")
            except Exception as err:  # a shape no validator foresaw: report it, never crash the caller
                builder.errors.append(f"object {i}: cannot read this object: {type(err).__name__}: {err}")
    return builder.result()


def load_texts(
    texts: Iterable[tuple[str, str]], *, default_namespace: str = "metallb-system", max_chars: int | None = None
) -> Resources:
    """Build Resources from ``(source name, YAML text)`` pairs; all errors are reported together.

    The texts share one alias budget (:class:`yamlio.Budget`), and an unexpected exception while reading one
    object is reported against that object rather than escaping: every problem is a ConfigError.
    """
    builder = _Builder(default_namespace)
    budget = yamlio.Budget() if max_chars is None else yamlio.Budget(max_chars=max_chars)
    for source, text in texts:
        try:
            docs = _documents(text, source, budget)
        except ConfigError as err:
            builder.errors.extend(err.messages)
            continue
        for doc, where in docs:
            try:
                builder.add(doc, where)
            except Exception as err:  # a shape no validator foresaw: report it, never crash the caller
                builder.errors.append(f"{where}: cannot read this object: {type(err).__name__}: {err}")
    return builder.result()


def load_files(
    paths: Iterable[str | Path], *, default_namespace: str = "metallb-system", limits: ReadLimits = DEFAULT_LIMITS
) -> Resources:
    """Read YAML files (``-`` is not special); ConfigError names the file and document of each problem.

    Only regular files of bounded size are read (:mod:`ironlb.config.reading`).
    """
    texts = read_texts(paths, limits)
    return load_texts(texts, default_namespace=default_namespace, max_chars=max(limits.file_bytes, 1))
