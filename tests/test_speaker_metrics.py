"""The speaker's metrics live in one place: one set per registry, shared by every announcer on it."""

from __future__ import annotations

import functools
import socket

from prometheus_client import CollectorRegistry, generate_latest

from ironlb.announce.announcer import Announcer
from ironlb.membership import Membership, MembershipService
from ironlb.metrics.client import ClientCounters
from ironlb.metrics.speaker import speaker_metrics
from ironlb.speaker.metrics import SpeakerCollector
from tests.support.waits import wait_until_async

SECRET = b"metrics-test-secret-0123456789abcd"


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


async def test_membership_metrics_follow_the_view() -> None:
    """Three real membership services on loopback: the scrape shows 3 members alive with quorum, datagrams dropped
    by reason, and, once two stop, one alive without quorum (what the IronLBNoQuorum alert watches)."""
    socks = []
    for _ in range(3):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    members = {name: s.getsockname() for name, s in zip("abc", socks, strict=True)}
    services = {name: MembershipService(Membership(name, SECRET, members), sock=s)
                for name, s in zip("abc", socks, strict=True)}
    registry = CollectorRegistry()
    registry.register(SpeakerCollector(ClientCounters(), membership=lambda: services["a"]))
    value = functools.partial(sample, registry)
    async with services["a"]:
        async with services["b"], services["c"]:
            await wait_until_async(lambda: value("ironlb_membership_alive_members") == 3, 10, "3 alive")
            assert value("ironlb_membership_members") == 3 and value("ironlb_membership_quorum_bool") == 1
            assert value("ironlb_membership_stalls_total") == services["a"].membership.stalls
            junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            junk.sendto(b"y", members["a"])
            junk.close()
            await wait_until_async(
                lambda: value("ironlb_membership_rejected_datagrams_total", reason="undersized") == 1, 10,
                "the junk datagram counted")
        await wait_until_async(lambda: value("ironlb_membership_alive_members") == 1, 10, "b and c dead")
        assert value("ironlb_membership_quorum_bool") == 0
    # without a membership (memberlist off) the families are absent
    registry = CollectorRegistry()
    registry.register(SpeakerCollector(ClientCounters(), membership=lambda: None))
    assert "ironlb_membership" not in generate_latest(registry).decode()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)
