"""The ``metallb.io`` annotation keys a Service carries, read by the allocator, the election and the controller.

They live beside the object snapshots because every layer reads them: keeping them here lets the layer 2
election and the route planner use them without importing the allocator.
"""

PREFIX = "metallb.io/"
DEPRECATED_PREFIX = "metallb.universe.tf/"
ADDRESS_POOL = "address-pool"
LOAD_BALANCER_IPS = "loadBalancerIPs"
ALLOW_SHARED_IP = "allow-shared-ip"
IP_ALLOCATED_FROM_POOL = "ip-allocated-from-pool"
