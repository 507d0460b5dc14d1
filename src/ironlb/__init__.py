"""ironlb: a MetalLB-compatible load balancer for bare-metal Kubernetes."""

__version__ = "0.1.0"
