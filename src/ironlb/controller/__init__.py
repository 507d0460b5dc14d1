"""``ironlb controller``: MetalLB's controller (IP allocation, Service status, events, pool status) for a live
cluster; see :mod:`ironlb.controller.controller`."""

from ironlb.controller.controller import Controller, ControllerOptions

__all__ = ["Controller", "ControllerOptions"]
