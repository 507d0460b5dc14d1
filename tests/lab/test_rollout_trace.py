"""The rollout bench's attribution of failed attempts (ironlb.lab.rollout_trace) and the probe's parts it needs:
the attempt's stage and local port, the router's frame and route-message parsing."""

from __future__ import annotations

import asyncio
import socket
import struct

from ironlb.lab.probe import http_attempt, parse_route_messages, parse_tcp4
from ironlb.lab.rollout_trace import PathIndex, attribute, disturbed_windows


def test_disturbed_windows_cover_each_nodes_restart_from_the_last_quiet_sample() -> None:
    up = (1, False)
    samples = [
        (0.0, {"node1": up, "node2": up}),
        (1.0, {"node1": (1, True), "node2": up}),  # old pod deleting beside... nothing yet
        (2.0, {"node1": (0, False), "node2": up}),  # gone, the new one not created yet
        (3.0, {"node1": (0, True), "node2": up}),  # the new one not Ready
        (4.0, {"node1": up, "node2": (0, True)}),
        (5.0, {"node1": up}),  # node2 has no pod at all: fewer ready than at first
    ]
    assert disturbed_windows(samples) == {"node1": [(0.0, 4.0)], "node2": [(3.0, 5.0)]}
    assert disturbed_windows([]) == {}
    assert disturbed_windows([(0.0, {"node1": up}), (1.0, {"node1": up})]) == {}


def test_attribute_splits_attempts_by_the_routers_choice_and_the_restart_windows() -> None:
    ip = "10.77.0.10"

    def http(t0: float, sport: int, ok: bool, **kw: object) -> dict[str, object]:
        return {"ev": "http", "t0": t0, "t1": t0 + (0.01 if ok else 1.0), "sport": sport, "ok": ok, **kw}

    paths = PathIndex.of([
        {"ev": "syn", "t": 10.001, "ip": ip, "sport": 1000, "mac": "aa"},
        {"ev": "syn", "t": 11.002, "ip": ip, "sport": 1001, "mac": "bb"},
        {"ev": "syn", "t": 12.001, "ip": ip, "sport": 1002, "mac": "aa"},
        {"ev": "moved", "t": 12.3, "ip": ip, "sport": 1002, "mac": "bb", "from": "aa"},
        {"ev": "syn", "t": 5.0, "ip": ip, "sport": 1003, "mac": "aa"},  # an older connection on the same port
        {"ev": "route", "t": 12.2, "op": "new", "dst": f"{ip}/32", "via": ["192.168.1.11"]},
        {"ev": "unanswered", "t": 11.003, "ip": ip, "sport": 1001},  # node2 got the SYN, sent no SYN-ACK
        {"ev": "answered", "t": 12.002, "ip": ip, "sport": 1002},  # node1 answered: lost after it
    ])  # fmt: skip
    attempts = {ip: [http(10.0, 1000, True), http(11.0, 1001, False, err="timeout", stage="connect"),
                     http(12.0, 1002, False, err="timeout", stage="read"), http(13.0, 1003, False, err="timeout"),
                     {"ev": "http", "t0": 14.0, "t1": 14.01, "ok": True}]}
    a = attribute(attempts, paths, {"aa": "node1", "bb": "node2"}, {"node1": [(11.5, 20.0)]}, t_ref=10.0)
    assert a.restarting == [1, 1]  # 12.0 through node1 while it restarted
    assert a.elsewhere == [2, 1]  # 10.0 through node1 before its window, 11.0 through node2
    assert a.by_node == {"node1": [2, 1], "node2": [1, 1]}
    assert a.untraced == [2, 1]  # no SYN of 13.0's at the router (port 1003's is from 5.0), none known for 14.0
    assert [(f["t"], f["node"], f["stage"], f["at_node"], f["moved"], f["restarting"]) for f in a.failures] == [
        (1.0, "node2", "connect", "unanswered", False, False), (2.0, "node1", "read", "answered", True, True),
        (3.0, None, None, "not seen", False, False)]
    assert paths.routes[0]["via"] == ["192.168.1.11"]


def _ipv4_tcp_frame(dst_mac: bytes, src: str, dst: str, sport: int, dport: int, flags: int) -> bytes:
    eth = dst_mac + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, flags, 1024, 0, 0)
    return eth + ip + tcp


def test_parse_tcp4_reads_the_next_hop_and_the_connection() -> None:
    frame = _ipv4_tcp_frame(b"\x02\x00\x00\x00\x00\x0b", "192.168.1.100", "10.77.0.10", 40000, 80, 0x02)
    assert parse_tcp4(frame) == ("02:00:00:00:00:0b", "192.168.1.100", "10.77.0.10", 40000, 80, 0x02)
    assert parse_tcp4(frame[:40]) is None  # truncated TCP header
    assert parse_tcp4(frame[:12] + b"\x08\x06" + frame[14:]) is None  # not IPv4
    udp = bytearray(frame)
    udp[23] = 17
    assert parse_tcp4(bytes(udp)) is None


def _rtattr(atype: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, atype) + value + b"\0" * ((4 - length % 4) % 4)


def _route_message(mtype: int, dst: str, attrs: bytes) -> bytes:
    rtmsg = struct.pack("=BBBBBBBBI", socket.AF_INET, 32, 0, 0, 254, 186, 0, 1, 0)
    body = rtmsg + _rtattr(1, socket.inet_aton(dst)) + attrs
    return struct.pack("=IHHII", 16 + len(body), mtype, 0, 0, 0) + body


def test_parse_route_messages_lists_every_gateway_of_a_multipath_route() -> None:
    hops = b"".join(struct.pack("=HBBi", 16, 0, 0, 2) + _rtattr(5, socket.inet_aton(gw))
                    for gw in ("192.168.1.11", "192.168.1.12"))
    data = (_route_message(24, "10.77.0.10", _rtattr(9, hops))
            + _route_message(25, "10.77.0.11", _rtattr(5, socket.inet_aton("192.168.1.13"))))
    assert parse_route_messages(data) == [
        {"op": "new", "dst": "10.77.0.10/32", "via": ["192.168.1.11", "192.168.1.12"]},
        {"op": "del", "dst": "10.77.0.11/32", "via": ["192.168.1.13"]},
    ]
    assert parse_route_messages(data[:-3]) == parse_route_messages(data)[:1]  # a truncated message ends the parse
    assert parse_route_messages(b"\xff" * 7) == []


def test_http_attempt_says_the_stage_of_a_failure_and_its_local_port() -> None:
    """Refused before the handshake: stage connect; accepted but never answered: stage read; both with the local
    port the router's trace would show."""

    async def run() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\n\r\npod-a")
            writer.close()

        mute = await asyncio.start_server(silent, "127.0.0.1", 0)
        good = await asyncio.start_server(answer, "127.0.0.1", 0)
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
        try:
            refused = await http_attempt("127.0.0.1", closed.getsockname()[1], 2.0)
            hung = await http_attempt("127.0.0.1", mute.sockets[0].getsockname()[1], 0.3)
            ok = await http_attempt("127.0.0.1", good.sockets[0].getsockname()[1], 2.0)
        finally:
            closed.close()
            mute.close()
            good.close()
        return refused, hung, ok

    refused, hung, ok = asyncio.run(run())
    assert (refused["ok"], refused["err"], refused["stage"]) == (False, "Connection refused", "connect")
    assert (hung["ok"], hung["err"], hung["stage"]) == (False, "timeout", "read")
    assert (ok["ok"], ok["body"]) == (True, "pod-a") and "stage" not in ok
    for e in (refused, hung, ok):
        assert isinstance(e["sport"], int) and e["sport"] > 0
