"""Test-side name for the namespace helpers, which live in the product for ``ironlb demo``."""

from ironlb.lab.netns import DEFAULT_SYSCTLS, NetnsLab, netns_available

__all__ = ["DEFAULT_SYSCTLS", "NetnsLab", "netns_available"]
