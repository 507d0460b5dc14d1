"""``ironlb explain --state DIR``: the view of ``ironlb run`` nodes, from the state directory and their status files.

The state directory is read with ``ironlb run``'s own bounds (:func:`ironlb.standalone.statedir.load`); each status
file (``--status-file`` of a node, JSON) says what that node announces, whom its membership sees alive, whether it
has quorum and whether its configuration is valid. Status files are input like any other: bounded, and one that
cannot be read is reported, never fatal.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

from ironlb.cluster.objects import EndpointSlice, Namespace, Node, Service
from ironlb.config import ConfigError, Resources, build
from ironlb.config.reading import DEFAULT_LIMITS, ReadLimits, read_bytes
from ironlb.config.types import Config
from ironlb.explain.core import (
    BGP,
    LAYER2,
    Announced,
    ComponentState,
    MemberView,
    View,
    allocated_services,
)
from ironlb.standalone import statedir

MAX_STATUS_BYTES = 16 * 1024 * 1024


def status_paths(status_dir: Path | None, files: Sequence[Path]) -> list[Path]:
    """The status files named, plus every ``*.json`` of ``status_dir``, in name order."""
    out = list(files)
    if status_dir is not None:
        out += sorted(p for p in status_dir.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
    return out


def read_status(path: Path) -> dict[str, Any]:
    """One node's status file; ConfigError naming the file when it is not a JSON object of a bounded size."""
    data = read_bytes(path, MAX_STATUS_BYTES)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise ConfigError(f"{path}: not a status file: {err}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a status file: a JSON object was expected")
    return doc


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _str_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _announced(statuses: Iterable[Mapping[str, Any]], services: Iterable[Service]) -> dict[str, tuple[Announced, ...]]:
    """Which node announces which Service, from each node's ``announcing`` (layer 2 IPs, advertised prefixes)."""
    by_ip: dict[str, list[str]] = {}
    for svc in services:
        for ip in svc.ingress:
            by_ip.setdefault(ip, []).append(svc.key)
    out: dict[str, list[Announced]] = {}
    for st in statuses:
        node = str(st.get("node") or "")
        announcing = _dict(st.get("announcing"))
        if st.get("stopped") or not node:
            continue
        for ip in _str_list(announcing.get("layer2")):
            for key in by_ip.get(ip, ()):
                out.setdefault(key, []).append(Announced(node, LAYER2))
        peers: dict[str, set[str]] = {}
        for route in announcing.get("bgp") or []:
            if not isinstance(route, dict) or route.get("state") != "advertised":
                continue
            try:
                net = ip_network(str(route.get("prefix")), strict=False)
            except ValueError:
                continue
            for ip, keys in by_ip.items():
                if ip_address(ip) in net:
                    for key in keys:
                        peers.setdefault(key, set()).add(str(route.get("peer") or ""))
        for key, names in peers.items():
            out.setdefault(key, []).append(Announced(node, BGP, tuple(sorted(names))))
    return {key: tuple(v) for key, v in out.items()}


def view_from(
    resources: Resources | None,
    statuses: Sequence[Mapping[str, Any]],
    *,
    namespace: str = "metallb-system",
    lb_class: str = "",
    ignore_exclude_lb: bool = False,
    state_error: str | None = None,
    bad_status: Sequence[str] = (),
) -> View:
    """The :class:`View` of the nodes whose status files are given (pure apart from the parsing)."""
    config: Config | None = None
    components: list[ComponentState] = []
    if state_error is not None:
        components.append(ComponentState("state directory", False, state_error))
    if resources is not None:
        try:
            config = build(resources, namespace=namespace).config
        except ConfigError as err:
            components.append(ComponentState("state directory", False, str(err)))
    members: list[MemberView] = []
    for st in statuses:
        node = str(st.get("node") or "?")
        cfg = _dict(st.get("config"))
        valid = cfg.get("valid")
        components.append(ComponentState(f"node {node}", valid if isinstance(valid, bool) else None,
                                         str(cfg.get("error") or "")))  # fmt: skip
        ml = _dict(st.get("members"))
        quorum = ml.get("quorum")
        if st.get("stopped"):
            continue
        members.append(
            MemberView(node, tuple(_str_list(ml.get("alive"))), quorum if isinstance(quorum, bool) else None)
        )
    components += [ComponentState("status file", None, b) for b in bad_status]
    services = tuple(Service.from_dict(s, default_cluster_ips=True) for s in resources.services) if resources else ()
    nodes = tuple(Node.from_dict(n) for n in resources.nodes) if resources else ()
    member_names = sorted({m.node for m in members} | {a for m in members for a in m.alive})
    if not nodes:  # without Node objects the members are the nodes (as ``ironlb run``)
        nodes = tuple(Node(name) for name in member_names)
    views = Counter(tuple(sorted(m.alive)) for m in members)
    live = tuple(views.most_common(1)[0][0]) if views else None
    base = View(
        config=config,
        services=services,
        nodes=nodes,
        endpoint_slices=tuple(EndpointSlice.from_dict(e) for e in resources.endpoint_slices) if resources else (),
        namespaces=tuple(Namespace.from_dict(n) for n in resources.namespaces) if resources else (),
        allocate=True,
        served_without_slices=True,
        speakers=tuple(member_names) if member_names else None,
        live=live,
        no_quorum=tuple(m.node for m in members if m.quorum is False),
        components=tuple(components),
        members=tuple(members),
        lb_class=lb_class,
        ignore_exclude_lb=ignore_exclude_lb,
    )
    if not statuses:
        return base
    # ``ironlb run`` allocates from the files: the announced IPs are those of that allocation.
    announced = _announced(statuses, allocated_services(base))
    return replace(base, announced=announced, announcements_known=True)


def load_view(
    state: Path,
    status_files: Sequence[Path],
    *,
    namespace: str = "metallb-system",
    lb_class: str = "",
    ignore_exclude_lb: bool = False,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> tuple[View, Resources | None]:
    """Read the state directory and the status files (blocking); the view, and the resources for a what-if."""
    resources: Resources | None = None
    state_error: str | None = None
    try:
        resources = statedir.load(state, namespace, limits)
    except ConfigError as err:
        state_error = str(err)
    statuses: list[dict[str, Any]] = []
    bad: list[str] = []
    for path in status_files:
        try:
            statuses.append(read_status(path))
        except (ConfigError, OSError) as err:
            bad.append(f"{path}: {err}" if isinstance(err, OSError) else str(err))
    view = view_from(
        resources, statuses, namespace=namespace, lb_class=lb_class, ignore_exclude_lb=ignore_exclude_lb,
        state_error=state_error, bad_status=bad,
    )  # fmt: skip
    return view, resources
