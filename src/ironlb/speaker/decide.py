"""The pure part of ``ironlb speaker`` that is its own: the configuration a speaker builds for its node.

What the node then announces is :func:`ironlb.decide.decide_node`, shared with ``ironlb plan`` and ``ironlb
run``. The speaker never allocates: a Service's IPs are its ``status.loadBalancer.ingress`` as the controller
wrote them, and its pool is the pool containing all of them (:func:`ironlb.decide.pool_for`).

The configuration a speaker builds keeps only the BGPPeers and BGPAdvertisements whose nodeSelectors select its
own node (MetalLB's ConfigReconciler), so a peer meant for other nodes can neither start a session here nor make
this node's configuration invalid; L2Advertisements are kept whole, since every speaker must see the same
candidates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ironlb.cluster.labels import LabelSelector, SelectorError
from ironlb.config.types import Config
from ironlb.decide import IP_NOT_ALLOWED, NodeDecision, decide_node, pool_for

if TYPE_CHECKING:
    from ironlb.config.loader import Resources
    from ironlb.config.models import LabelSelectorModel


def _selects(selectors: Sequence[LabelSelectorModel], labels: Mapping[str, str]) -> bool:
    """Whether nodeSelectors select a node; an unparsable selector is kept, so validation reports it."""
    if not selectors:
        return True
    try:
        parsed: list[LabelSelector] = [s.to_selector() for s in selectors]
    except SelectorError:
        return True
    return any(s.matches(labels) for s in parsed)


def for_node(resources: Resources, node_labels: Mapping[str, str]) -> Resources:
    """Only the BGPPeers and BGPAdvertisements selecting this node (MetalLB's speaker-side filter)."""
    return replace(
        resources,
        bgp_peers=tuple(p for p in resources.bgp_peers if _selects(p.spec.node_selectors, node_labels)),
        bgp_advertisements=tuple(
            a for a in resources.bgp_advertisements if _selects(a.spec.node_selectors, node_labels)
        ),
    )


def speaker_config(objects: Iterable[object], node_labels: Mapping[str, str], namespace: str) -> Config:
    """The speaker's configuration from the cached objects; raises ConfigError when invalid.

    The configuration models (pydantic) are imported here, at the first build, not with the speaker: that build
    runs once the configuration's own objects are listed, while the apiserver is still sending the Services and
    EndpointSlices, so their import overlaps that wait instead of delaying the first request (issue 16)."""
    from ironlb.config.build import build
    from ironlb.config.loader import load_objects

    resources = for_node(load_objects(objects, default_namespace=namespace), node_labels)
    return build(resources, namespace=namespace).config


__all__ = ["IP_NOT_ALLOWED", "NodeDecision", "decide_node", "for_node", "pool_for", "speaker_config"]
