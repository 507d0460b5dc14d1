"""A KubeClient whose ``request`` a test supplies: the typed calls (get, list_all, create, replace, patch) stay the
real ones, so code under test talks to Kubernetes exactly as it does in production."""

from __future__ import annotations

from collections import Counter

from ironlb.kube.client import KubeClient, RateLimiter


class RequestClient(KubeClient):
    def __init__(self) -> None:  # no HTTP connection: a subclass answers ``request`` itself
        self.server = "test"
        self.namespace = None
        self.limiter = RateLimiter(1e6, 1_000_000)
        self.timeout = 30.0
        self.stats: Counter[str] = Counter()

    async def close(self) -> None:
        return None
