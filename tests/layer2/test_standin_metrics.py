"""The restart-hold metrics: counted in the fast process's unregistered store, handed to the main process in its
metrics message, exported there under ironlb's names (``ironlb_layer2_standin_*``, ``ironlb_membership_holds_*``)."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ironlb.fastproc.child import FastChild
from ironlb.fastproc.parent import FastProcess, FastProcessOptions
from ironlb.layer2.standin_metrics import HOLDS_BEGUN, HOLDS_ENDED, STANDIN_ANSWERS, STANDIN_IPS, StandInMetrics
from ironlb.membership.events import HoldBegun, HoldEnded, MemberHeld
from ironlb.membership.hold import HeldLink
from ironlb.metrics.speaker import SpeakerMetrics


def page(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def fast_side() -> StandInMetrics:
    counts = StandInMetrics(None)
    counts.hold_begun("node3")
    counts.standing_in({"node3": 4})
    for _ in range(5):
        counts.answered("node3")
    counts.hold_ended("returned")
    counts.hold_begun("node3")
    counts.hold_ended("unreachable")
    return counts


def test_the_fast_process_counts_reach_the_main_process_registry() -> None:
    registry = CollectorRegistry()
    process = FastProcess(FastProcessOptions(), metrics=SpeakerMetrics.on(registry))
    message = {"t": "metrics", "layer2_changes": {}, "bfd": {}, "rejected": {}, "stalls": 0,
               "standin": fast_side().snapshot()}  # fmt: skip
    process._dispatch(message)
    got = page(registry)
    assert got[(STANDIN_IPS, (("node", "node3"),))] == 4
    assert got[(STANDIN_ANSWERS, (("node", "node3"),))] == 5
    assert got[(HOLDS_BEGUN, (("node", "node3"),))] == 2
    assert got[(HOLDS_ENDED, (("reason", "returned"),))] == 1
    assert got[(HOLDS_ENDED, (("reason", "unreachable"),))] == 1
    types = {f.name: f.type for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert types["ironlb_layer2_standin_ips"] == "gauge"
    assert {types[name.removesuffix("_total")] for name in (STANDIN_ANSWERS, HOLDS_BEGUN, HOLDS_ENDED)} == {"counter"}
    # An older fast process (no "standin" in its report) leaves the values as they were.
    del message["standin"]
    process._dispatch(message)
    assert page(registry)[(STANDIN_ANSWERS, (("node", "node3"),))] == 5


def test_a_store_without_a_registry_exports_nothing_and_load_ignores_garbage() -> None:
    counts = fast_side()
    registry = CollectorRegistry()
    assert "standin" not in generate_latest(registry).decode()
    exported = StandInMetrics(registry)
    exported.load({**counts.snapshot(), HOLDS_ENDED: {"returned": "many"}, "unknown": {"x": 1}, STANDIN_IPS: 7})
    got = page(registry)
    assert got[(STANDIN_ANSWERS, (("node", "node3"),))] == 5
    assert (HOLDS_ENDED, (("reason", "returned"),)) not in got  # the malformed family kept its (empty) values
    assert (STANDIN_IPS, (("node", "node3"),)) not in got


async def test_the_fast_process_counts_a_hold_from_the_cores_hold_begun_event() -> None:
    """One ``HoldBegun`` a hold (the core's), however many ``MemberHeld`` add IPs to it."""
    ours, theirs = socket.socketpair()
    try:
        child = FastChild(theirs)  # no responder, no membership: only the counting is looked at
        link = (HeldLink(bytes(6), IPv4Address("192.0.2.3")),)
        for event in [
            HoldBegun("node3", 7),
            MemberHeld("node3", 7, 5.0, link, frozenset({IPv4Address("192.0.2.10")})),
            MemberHeld("node3", 7, 5.0, link, frozenset({IPv4Address("192.0.2.10"), IPv4Address("192.0.2.11")})),
            HoldEnded("node3", "returned"),
            HoldBegun("node3", 8),
            MemberHeld("node3", 8, 9.0, link, frozenset()),
        ]:
            child._holds.on_event(event)  # ironlb.fastproc.holds, as thread mode
        counts = child._standin_metrics
        assert counts.value(HOLDS_BEGUN, "node3") == 2
        assert counts.value(HOLDS_ENDED, "returned") == 1
    finally:
        ours.close()
        theirs.close()
