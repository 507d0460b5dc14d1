"""``ironlb explain`` against a cluster: one LIST of everything the explanation reads, then the pure core.

Read: Services, Nodes, EndpointSlices, Namespaces and Service Events cluster-wide; in ironlb's namespace the
``metallb.io`` configuration (and the legacy ConfigMap ``config``), the ConfigurationStates, ServiceL2Status and
ServiceBGPStatus, and the speaker pods (label ``component`` or ``app.kubernetes.io/component`` ``speaker``): a
node with a ready speaker pod is a speaker.
Without any speaker pod (speakers run outside the cluster), every Node counts as one. The configuration in force is
the one the objects build now; when they are invalid the controller keeps its last valid one, which is not
readable from outside, so the explanation then has no configuration and the ConfigurationStates say why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from ironlb.cluster.objects import EndpointSlice, Namespace, Node, Service
from ironlb.config import ConfigError, Resources, build, load_files, load_objects
from ironlb.config.types import Config
from ironlb.explain.core import BGP, LAYER2, Announced, ComponentState, EventRecord, View, changed_config
from ironlb.kube.client import (
    BFD_PROFILES,
    BGP_ADVERTISEMENTS,
    BGP_PEERS,
    COMMUNITIES,
    CONFIG_MAPS,
    CONFIGURATION_STATES,
    ENDPOINT_SLICES,
    EVENTS,
    IP_ADDRESS_POOLS,
    L2_ADVERTISEMENTS,
    NAMESPACES,
    NODES,
    PODS,
    SERVICE_BGP_STATUSES,
    SERVICE_L2_STATUSES,
    SERVICES,
    KubeClient,
    KubeError,
    Obj,
    Resource,
)

SPEAKER_LABELS = ("component", "app.kubernetes.io/component")  # the bundle's label, the Helm chart's
LEGACY_CONFIGMAP = "config"
MAX_EVENTS_PER_SERVICE = 20


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _dict(obj.get("metadata"))


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _dict(obj.get("status"))


def _component(state: Mapping[str, Any]) -> ComponentState:
    """A ConfigurationState: ``result`` Valid / Invalid, ``errorSummary``."""
    st = _status(state)
    result = st.get("result")
    valid = None if result is None else result == "Valid"
    return ComponentState(str(_meta(state).get("name") or ""), valid, str(st.get("errorSummary") or ""))


def _announced(l2: list[Obj], bgp: list[Obj]) -> dict[str, tuple[Announced, ...]]:
    out: dict[str, list[Announced]] = {}
    for obj, protocol in [*((o, LAYER2) for o in l2), *((o, BGP) for o in bgp)]:
        st = _status(obj)
        node, ns, name = st.get("node"), st.get("serviceNamespace"), st.get("serviceName")
        if not (node and ns and name):
            continue
        if protocol == LAYER2:
            detail = tuple(str(i.get("name")) for i in st.get("interfaces") or [] if isinstance(i, Mapping))
        else:
            detail = tuple(str(p) for p in st.get("peers") or [])
        out.setdefault(f"{ns}/{name}", []).append(Announced(str(node), protocol, detail))
    return {k: tuple(sorted(v, key=lambda a: (a.protocol, a.node))) for k, v in out.items()}


def _events(events: list[Obj]) -> dict[str, tuple[EventRecord, ...]]:
    out: dict[str, list[tuple[str, EventRecord]]] = {}
    for ev in events:
        inv = _dict(ev.get("involvedObject"))
        if inv.get("kind") != "Service":
            continue
        last = str(ev.get("lastTimestamp") or ev.get("eventTime") or _meta(ev).get("creationTimestamp") or "")
        source = _dict(ev.get("source"))
        record = EventRecord(
            str(ev.get("type") or ""), str(ev.get("reason") or ""), str(ev.get("message") or ""),
            int(ev.get("count") or 1), last, str(source.get("component") or ev.get("reportingComponent") or ""),
        )  # fmt: skip
        out.setdefault(f"{inv.get('namespace')}/{inv.get('name')}", []).append((last, record))
    return {k: tuple(r for _, r in sorted(v, key=lambda x: x[0])[-MAX_EVENTS_PER_SERVICE:]) for k, v in out.items()}


def _ready_node(pod: Mapping[str, Any]) -> str | None:
    """The node of a ready speaker pod, None for any other pod."""
    labels = _dict(_meta(pod).get("labels"))
    if not any(labels.get(key) == "speaker" for key in SPEAKER_LABELS):
        return None
    node = _dict(pod.get("spec")).get("nodeName")
    conditions = _status(pod).get("conditions") or []
    ready = any(isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return str(node) if node and ready else None


def config_objects(objs: Mapping[Resource, list[Obj]], config_maps: list[Obj]) -> list[Obj]:
    """The objects the configuration is built from (ironlb's namespace), the legacy ConfigMap ``config`` included."""
    kinds = (IP_ADDRESS_POOLS, L2_ADVERTISEMENTS, BGP_ADVERTISEMENTS, BGP_PEERS, BFD_PROFILES, COMMUNITIES)
    out = [o for kind in kinds for o in objs[kind]]
    out += [c for c in config_maps if _meta(c).get("name") == LEGACY_CONFIGMAP]
    return out


async def read_view(
    kubeconfig: str | None,
    namespace: str,
    *,
    lb_class: str = "",
    ignore_exclude_lb: bool = False,
    what_if: str | None = None,
    what_if_delete: Sequence[str] = (),
) -> tuple[View, Config | None]:
    """The cluster's :class:`View` and, with ``what_if`` (a file), the configuration it would put in force.

    ConfigError for an unreachable cluster or an invalid what-if file (the message names it).
    """
    try:
        client = KubeClient.from_kubeconfig(kubeconfig)
    except Exception as err:  # lightkube's loader raises its own types for a missing or broken kubeconfig
        raise ConfigError(f"kubeconfig: {type(err).__name__}: {err}") from None
    async with client:
        try:
            return await _read(client, namespace, lb_class, ignore_exclude_lb, what_if, what_if_delete)
        except KubeError as err:
            raise ConfigError(f"reading the cluster: {err}") from None


async def _read(
    client: KubeClient, ns: str, lb_class: str, ignore_exclude_lb: bool, what_if: str | None,
    what_if_delete: Sequence[str],
) -> tuple[View, Config | None]:
    cluster = (SERVICES, NODES, ENDPOINT_SLICES, NAMESPACES)
    local = (IP_ADDRESS_POOLS, L2_ADVERTISEMENTS, BGP_ADVERTISEMENTS, BGP_PEERS, BFD_PROFILES, COMMUNITIES,
             CONFIGURATION_STATES, SERVICE_L2_STATUSES, SERVICE_BGP_STATUSES, CONFIG_MAPS)  # fmt: skip
    lists = await asyncio.gather(
        *(client.list_all(r) for r in cluster),
        *(client.list_all(r, ns) for r in local),
        client.list_all(PODS, ns),
        client.list_all(EVENTS, field_selector="involvedObject.kind=Service"),
    )
    objs: dict[Resource, list[Obj]] = {r: items for r, (items, _) in zip((*cluster, *local), lists, strict=False)}
    pods, _ = lists[len(cluster) + len(local)]
    events, _ = lists[len(cluster) + len(local) + 1]
    namespaces = objs[NAMESPACES]
    resources: Resources | None = None
    config: Config | None = None
    components = [_component(s) for s in sorted(objs[CONFIGURATION_STATES], key=lambda o: str(_meta(o).get("name")))]
    try:
        resources = load_objects([*config_objects(objs, objs[CONFIG_MAPS]), *namespaces], default_namespace=ns)
        config = build(resources, namespace=ns).config
    except ConfigError as err:
        components.insert(0, ComponentState("configuration objects (now)", False, str(err)))
    speakers = sorted({n for p in pods if (n := _ready_node(p))})
    pool_counters = {
        str(_meta(p).get("name")): {k: int(v) for k, v in _status(p).items() if isinstance(v, int)}
        for p in objs[IP_ADDRESS_POOLS]
        if _status(p)
    }
    view = View(
        config=config,
        services=tuple(Service.from_dict(s) for s in objs[SERVICES]),
        nodes=tuple(Node.from_dict(n) for n in objs[NODES]),
        endpoint_slices=tuple(EndpointSlice.from_dict(e) for e in objs[ENDPOINT_SLICES]),
        namespaces=tuple(Namespace.from_dict(n) for n in namespaces),
        speakers=tuple(speakers) if speakers else None,
        announced=_announced(objs[SERVICE_L2_STATUSES], objs[SERVICE_BGP_STATUSES]),
        announcements_known=True,
        events=_events(events),
        components=tuple(components),
        pools=pool_counters if pool_counters and config is not None and set(pool_counters) == {
            p.name for p in config.pools} else None,
        lb_class=lb_class,
        ignore_exclude_lb=ignore_exclude_lb,
    )  # fmt: skip
    new_config = None
    if what_if is not None or what_if_delete:
        change = load_files([what_if], default_namespace=ns) if what_if is not None else None
        new_config = changed_config(resources, change, what_if_delete, ns)
    return view, new_config
