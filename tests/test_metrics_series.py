"""The stores of one label a family (:class:`ironlb.metrics.series.LabelledSeries`: the restart-hold, Layer 2 and
BFD counts) expose exactly these bytes: names, labels, types and HELP texts are what dashboards and docs/metrics.md
name, so a change to the store must not move a byte of them."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from ironlb.bfd.metrics import CONTROL_PACKET_INPUT, BFDMetrics
from ironlb.layer2.metrics import Layer2Metrics
from ironlb.layer2.standin_metrics import StandInMetrics
from ironlb.metrics.series import LabelledSeries

PROMETHEUS = (
    "# HELP ironlb_layer2_standin_ips IPs this speaker stands in for (answers ARP/NDP with the restarting member's MAC), by restarting member.\n"
    "# TYPE ironlb_layer2_standin_ips gauge\n"
    'ironlb_layer2_standin_ips{node="node1"} 2.0\n'
    'ironlb_layer2_standin_ips{node="node3"} 4.0\n'
    "# HELP ironlb_layer2_standin_answers_total ARP replies and NDP advertisements sent as a stand-in (with the restarting member's MAC), by restarting member.\n"
    "# TYPE ironlb_layer2_standin_answers_total counter\n"
    'ironlb_layer2_standin_answers_total{node="node1"} 1.0\n'
    'ironlb_layer2_standin_answers_total{node="node3"} 1.0\n'
    "# HELP ironlb_membership_holds_begun_total Restart holds accepted from a member (its IPs kept in place while its speaker restarts).\n"
    "# TYPE ironlb_membership_holds_begun_total counter\n"
    'ironlb_membership_holds_begun_total{node="node3"} 1.0\n'
    "# HELP ironlb_membership_holds_ended_total Restart holds ended, by reason: returned, expired, unreachable, left, removed, standin_down.\n"
    "# TYPE ironlb_membership_holds_ended_total counter\n"
    'ironlb_membership_holds_ended_total{reason="expired"} 1.0\n'
    'ironlb_membership_holds_ended_total{reason="returned"} 1.0\n'
    "# HELP metallb_layer2_requests_received Number of layer2 requests received for owned IPs\n"
    "# TYPE metallb_layer2_requests_received untyped\n"
    'metallb_layer2_requests_received{ip="10.0.0.1"} 1.0\n'
    "# HELP metallb_layer2_responses_sent Number of layer2 responses sent for owned IPs\n"
    "# TYPE metallb_layer2_responses_sent untyped\n"
    'metallb_layer2_responses_sent{ip="10.0.0.1"} 1.0\n'
    "# HELP metallb_layer2_gratuitous_sent Number of gratuitous layer2 packets sent for owned IPs\n"
    "# TYPE metallb_layer2_gratuitous_sent untyped\n"
    'metallb_layer2_gratuitous_sent{ip="fd00::1"} 3.0\n'
    "# HELP metallb_bfd_session_up BFD session state (1 is up, 0 is down)\n"
    "# TYPE metallb_bfd_session_up gauge\n"
    'metallb_bfd_session_up{peer="192.0.2.1"} 1.0\n'
    "# HELP metallb_bfd_control_packet_input Number of received BFD control packets\n"
    "# TYPE metallb_bfd_control_packet_input untyped\n"
    'metallb_bfd_control_packet_input{peer="192.0.2.1"} 5.0\n'
    "# HELP metallb_bfd_control_packet_output Number of sent BFD control packets\n"
    "# TYPE metallb_bfd_control_packet_output untyped\n"
    'metallb_bfd_control_packet_output{peer="192.0.2.1"} 0.0\n'
    "# HELP metallb_bfd_echo_packet_input Number of received BFD echo packets\n"
    "# TYPE metallb_bfd_echo_packet_input untyped\n"
    'metallb_bfd_echo_packet_input{peer="192.0.2.1"} 0.0\n'
    "# HELP metallb_bfd_echo_packet_output Number of sent BFD echo packets\n"
    "# TYPE metallb_bfd_echo_packet_output untyped\n"
    'metallb_bfd_echo_packet_output{peer="192.0.2.1"} 0.0\n'
    "# HELP metallb_bfd_session_up_events Number of BFD session up events\n"
    "# TYPE metallb_bfd_session_up_events untyped\n"
    'metallb_bfd_session_up_events{peer="192.0.2.1"} 0.0\n'
    "# HELP metallb_bfd_session_down_events Number of BFD session down events\n"
    "# TYPE metallb_bfd_session_down_events untyped\n"
    'metallb_bfd_session_down_events{peer="192.0.2.1"} 0.0\n'
    "# HELP metallb_bfd_zebra_notifications Number of BFD zebra notifications\n"
    "# TYPE metallb_bfd_zebra_notifications untyped\n"
    'metallb_bfd_zebra_notifications{peer="192.0.2.1"} 0.0\n'
)

EMPTY_STANDIN = (
    "# HELP ironlb_layer2_standin_ips IPs this speaker stands in for (answers ARP/NDP with the restarting member's MAC), by restarting member.\n"
    "# TYPE ironlb_layer2_standin_ips gauge\n"
    "# HELP ironlb_layer2_standin_answers_total ARP replies and NDP advertisements sent as a stand-in (with the restarting member's MAC), by restarting member.\n"
    "# TYPE ironlb_layer2_standin_answers_total counter\n"
    "# HELP ironlb_membership_holds_begun_total Restart holds accepted from a member (its IPs kept in place while its speaker restarts).\n"
    "# TYPE ironlb_membership_holds_begun_total counter\n"
    "# HELP ironlb_membership_holds_ended_total Restart holds ended, by reason: returned, expired, unreachable, left, removed, standin_down.\n"
    "# TYPE ironlb_membership_holds_ended_total counter\n"
)

OPENMETRICS = (
    "# HELP ironlb_layer2_standin_ips IPs this speaker stands in for (answers ARP/NDP with the restarting member's MAC), by restarting member.\n"
    "# TYPE ironlb_layer2_standin_ips gauge\n"
    'ironlb_layer2_standin_ips{node="node1"} 2.0\n'
    'ironlb_layer2_standin_ips{node="node3"} 4.0\n'
    "# HELP ironlb_layer2_standin_answers ARP replies and NDP advertisements sent as a stand-in (with the restarting member's MAC), by restarting member.\n"
    "# TYPE ironlb_layer2_standin_answers counter\n"
    'ironlb_layer2_standin_answers_total{node="node1"} 1.0\n'
    'ironlb_layer2_standin_answers_total{node="node3"} 1.0\n'
    "# HELP ironlb_membership_holds_begun Restart holds accepted from a member (its IPs kept in place while its speaker restarts).\n"
    "# TYPE ironlb_membership_holds_begun counter\n"
    'ironlb_membership_holds_begun_total{node="node3"} 1.0\n'
    "# HELP ironlb_membership_holds_ended Restart holds ended, by reason: returned, expired, unreachable, left, removed, standin_down.\n"
    "# TYPE ironlb_membership_holds_ended counter\n"
    'ironlb_membership_holds_ended_total{reason="expired"} 1.0\n'
    'ironlb_membership_holds_ended_total{reason="returned"} 1.0\n'
    "# HELP metallb_layer2_requests_received Number of layer2 requests received for owned IPs\n"
    "# TYPE metallb_layer2_requests_received unknown\n"
    'metallb_layer2_requests_received{ip="10.0.0.1"} 1.0\n'
    "# HELP metallb_layer2_responses_sent Number of layer2 responses sent for owned IPs\n"
    "# TYPE metallb_layer2_responses_sent unknown\n"
    'metallb_layer2_responses_sent{ip="10.0.0.1"} 1.0\n'
    "# HELP metallb_layer2_gratuitous_sent Number of gratuitous layer2 packets sent for owned IPs\n"
    "# TYPE metallb_layer2_gratuitous_sent unknown\n"
    'metallb_layer2_gratuitous_sent{ip="fd00::1"} 3.0\n'
    "# HELP metallb_bfd_session_up BFD session state (1 is up, 0 is down)\n"
    "# TYPE metallb_bfd_session_up gauge\n"
    'metallb_bfd_session_up{peer="192.0.2.1"} 1.0\n'
    "# HELP metallb_bfd_control_packet_input Number of received BFD control packets\n"
    "# TYPE metallb_bfd_control_packet_input unknown\n"
    'metallb_bfd_control_packet_input{peer="192.0.2.1"} 5.0\n'
    "# HELP metallb_bfd_control_packet_output Number of sent BFD control packets\n"
    "# TYPE metallb_bfd_control_packet_output unknown\n"
    'metallb_bfd_control_packet_output{peer="192.0.2.1"} 0.0\n'
    "# HELP metallb_bfd_echo_packet_input Number of received BFD echo packets\n"
    "# TYPE metallb_bfd_echo_packet_input unknown\n"
    'metallb_bfd_echo_packet_input{peer="192.0.2.1"} 0.0\n'
    "# HELP metallb_bfd_echo_packet_output Number of sent BFD echo packets\n"
    "# TYPE metallb_bfd_echo_packet_output unknown\n"
    'metallb_bfd_echo_packet_output{peer="192.0.2.1"} 0.0\n'
    "# HELP metallb_bfd_session_up_events Number of BFD session up events\n"
    "# TYPE metallb_bfd_session_up_events unknown\n"
    'metallb_bfd_session_up_events{peer="192.0.2.1"} 0.0\n'
    "# HELP metallb_bfd_session_down_events Number of BFD session down events\n"
    "# TYPE metallb_bfd_session_down_events unknown\n"
    'metallb_bfd_session_down_events{peer="192.0.2.1"} 0.0\n'
    "# HELP metallb_bfd_zebra_notifications Number of BFD zebra notifications\n"
    "# TYPE metallb_bfd_zebra_notifications unknown\n"
    'metallb_bfd_zebra_notifications{peer="192.0.2.1"} 0.0\n'
    "# EOF\n"
)


def stores(registry: CollectorRegistry) -> None:
    standin = StandInMetrics(registry)
    standin.hold_begun("node3")
    standin.standing_in({"node3": 4, "node1": 2})
    standin.answered("node3")
    standin.answered("node1")
    standin.hold_ended("returned")
    standin.hold_ended("expired")
    layer2 = Layer2Metrics(registry)
    layer2.request_received("10.0.0.1")
    layer2.response_sent("10.0.0.1")
    layer2.gratuitous_sent("fd00::1", 3)
    bfd = BFDMetrics(registry)
    bfd.add_peer("192.0.2.1")
    bfd.set_up("192.0.2.1", True)
    bfd.inc(CONTROL_PACKET_INPUT, "192.0.2.1", 5)


def test_the_text_exposition_is_byte_for_byte_the_same() -> None:
    registry = CollectorRegistry()
    stores(registry)
    assert generate_latest(registry).decode() == PROMETHEUS


def test_the_openmetrics_exposition_is_byte_for_byte_the_same() -> None:
    registry = CollectorRegistry()
    stores(registry)
    assert generate_openmetrics(registry).decode() == OPENMETRICS


def test_an_empty_standin_store_still_describes_its_families() -> None:
    registry = CollectorRegistry()
    StandInMetrics(registry)
    assert generate_latest(registry).decode() == EMPTY_STANDIN


def test_a_counter_is_named_total_and_each_family_has_its_own_label() -> None:
    with pytest.raises(ValueError, match="x_count"):
        LabelledSeries({"x_count": "help"}, "node", None, types={"x_count": "counter"})
    store = LabelledSeries({"a_total": "a", "b": "b"}, "node", None, types={"a_total": "counter"}, labels={"b": "why"})
    store.load({"a_total": {"n1": 2}, "b": {"left": 1}})
    families = {f.name: f for f in store.collect()}
    assert families["a"].type == "counter"
    assert [(s.name, s.labels, s.value) for s in families["a"].samples] == [("a_total", {"node": "n1"}, 2.0)]
    assert [(s.name, s.labels, s.value) for s in families["b"].samples] == [("b", {"why": "left"}, 1.0)]
    # A family absent from the snapshot or malformed keeps its values; the others are replaced.
    store.load({"a_total": {"n1": "many"}, "b": {}})
    assert store.snapshot() == {"a_total": {"n1": 2.0}, "b": {}}
