"""The speaker's ``metallb_k8s_client_*`` metrics (the announced, layer2 and BGP ones register themselves)."""

from __future__ import annotations

from ironlb.metrics.client import ClientCollector

SpeakerCollector = ClientCollector

__all__ = ["SpeakerCollector"]
