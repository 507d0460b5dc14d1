"""MetalLB's reasons for a node not announcing a Service, shared by the layer 2 election and the BGP planner.

The same strings appear in ``ironlb plan`` output and in the speaker's logs, whichever protocol decided.
"""

from __future__ import annotations

from ironlb.cluster.objects import Node

NOT_LOAD_BALANCER = "notLoadBalancer"
NO_IP_ALLOCATED = "noIPAllocated"
NOT_OWNER = "notOwner"
NO_MATCHING_ADVERTISEMENT = "noMatchingAdvertisement"
# the speaker: the Service's IPs are in no pool (MetalLB's poolFor found none)
IP_NOT_ALLOWED = "ipNotAllowed"
# layer 2 only
SHARED_IP_WITH_SERVICE_SELECTOR = "sharedIPWithServiceSelector"
# BGP only, in the order ShouldAnnounce checks them after the ones above
CONFLICTING_ADVERTISEMENTS = "conflictingAdvertisements"
NODE_NETWORK_UNAVAILABLE = "nodeNetworkUnavailable"
NODE_LABELED_EXCLUDE_BALANCERS = "nodeLabeledExcludeBalancers"
NO_LOCAL_ENDPOINTS = "noLocalEndpoints"
NO_ENDPOINTS = "noEndpoints"
# ironlb's own, for `ironlb explain`: no live speaker on the node (none runs there, or membership sees it dead)
SPEAKER_NOT_LIVE = "speakerNotLive"
# ironlb's own, the detail of a layer 2 `notOwner` in `plan`: a candidate that lost the election, a speaker without
# a Node object
NOT_ELECTED = "notElected"
NO_NODE_OBJECT = "noNodeObject"
# ironlb's own, that detail for a speaker held for a restart: a candidate only for the IPs it had as its hold began
RESTARTING = "restarting"


def node_state_reason(node: Node, *, ignore_exclude_lb: bool = False) -> str | None:
    """Why the node's own state keeps it from announcing anything (None: it may), checked in MetalLB's order by
    both protocols: the NetworkUnavailable condition, then the exclusion label unless ``--ignore-exclude-lb``."""
    if node.network_unavailable:
        return NODE_NETWORK_UNAVAILABLE
    if not ignore_exclude_lb and node.excluded_from_lb:
        return NODE_LABELED_EXCLUDE_BALANCERS
    return None
