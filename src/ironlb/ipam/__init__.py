"""IP address management: MetalLB's allocator, reproduced without ever enumerating a pool.

``allocator`` holds which service owns which IPs; ``converge`` applies a Service's annotations and spec to it
(MetalLB's convergeBalancer); ``capacity`` counts addresses exactly.
"""
