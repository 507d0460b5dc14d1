"""The speaker's metrics live in one place: one set per registry, shared by every announcer on it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from ironlb.announce.announcer import Announcer
from ironlb.metrics.speaker import speaker_metrics


def test_one_set_of_speaker_metrics_per_registry() -> None:
    registry = CollectorRegistry()
    metrics = speaker_metrics(registry)
    assert speaker_metrics(registry) is metrics and speaker_metrics(CollectorRegistry()) is not metrics
    first, second = Announcer("n1", metrics=metrics), Announcer("n1", metrics=speaker_metrics(registry))
    assert first.metric is second.metric is metrics.announced
    first.metric.set({("default/web", "layer2", "n1", "10.0.0.1")})
    text = generate_latest(registry).decode()
    assert 'metallb_speaker_announced{ip="10.0.0.1",node="n1",protocol="layer2",service="default/web"} 1.0' in text
    for family in ("metallb_layer2_requests_received", "metallb_bgp_session_up", "metallb_bfd_session_up"):
        assert f"# HELP {family}" in text
