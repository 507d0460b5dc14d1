"""The membership socket under hostile input: a large receive buffer, junk dropped before parsing, and counted."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

from tests.support.udp import member_pair

from ironlb.membership import MemberDown, Membership, MembershipService
from ironlb.membership.wire import MAX_DATAGRAM

SECRET = b"socket-test-secret-0123456789abcd"


async def test_receive_buffer_is_enlarged_and_reported() -> None:
    sa, _sb, members = member_pair()
    svc = MembershipService(Membership("a", SECRET, members), sock=sa)
    async with svc:
        default = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            assert svc.receive_buffer > default.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        finally:
            default.close()
        if os.geteuid() == 0:  # SO_RCVBUFFORCE: the whole 4 MiB (the kernel reports twice what it books)
            assert svc.receive_buffer >= 4 * 1024 * 1024
    _sb.close()


async def test_junk_is_dropped_counted_and_heartbeats_still_count() -> None:
    sa, sb, members = member_pair()
    a = MembershipService(Membership("a", SECRET, members), sock=sa)
    b = MembershipService(Membership("b", SECRET, members), sock=sb)
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    async with a, b:
        target = members["a"]
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.2", 0))  # no member has this address
        for _ in range(200):
            stranger.sendto(b"IL\x01" + os.urandom(120), target)
            junk.sendto(b"x" * (MAX_DATAGRAM + 100), target)
            junk.sendto(b"y", target)
            junk.sendto(b"IL\x01" + os.urandom(120), target)  # right size and magic, wrong MAC
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            counts = a.rejections()
            if min(counts["oversized"], counts["undersized"], counts["bad_mac"], counts["unknown_address"]) >= 200:
                break
            await asyncio.sleep(0.02)
        counts = a.rejections()
        assert counts["oversized"] >= 200 and counts["undersized"] >= 200, counts
        assert counts["bad_mac"] >= 200 and counts["unknown_address"] >= 200, counts
        while a.alive() != {"a", "b"}:
            assert time.monotonic() < deadline, a.alive()
            await asyncio.sleep(0.02)
        assert a.view.alive == {"a", "b"} and a.view.has_quorum
    junk.close()
    stranger.close()


FLOOD = """
import os, socket, sys, time
target = (sys.argv[1], int(sys.argv[2]))
end = time.monotonic() + float(sys.argv[3])
junk = b"IL\\x01" + os.urandom(120)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind(("127.0.0.2", 0))  # no member has this address
    while time.monotonic() < end:  # bounded in time
        for _ in range(100):
            try:
                s.sendto(junk, target)
            except OSError:
                pass
"""


async def test_a_flood_that_fills_the_main_buffer_does_not_cost_a_heartbeat() -> None:
    """Members' datagrams land on sockets of their own: junk overflowing the main queue never pushes them out."""
    sa, sb, members = member_pair()
    events: list[object] = []
    # A flood from another process keeps the main queue (4 MiB) full faster than Python drains it: a heartbeat
    # queued behind it would wait longer than the dead timeout ("stale", then MemberDown).
    a = MembershipService(Membership("a", SECRET, members), sock=sa, on_event=events.append)
    b = MembershipService(Membership("b", SECRET, members), sock=sb)
    async with a, b:
        deadline = time.monotonic() + 5
        while a.alive() != {"a", "b"}:
            assert time.monotonic() < deadline, a.alive()
            await asyncio.sleep(0.02)
        events.clear()
        host, port = members["a"]
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, host, str(port), "3"])
        try:
            await asyncio.sleep(3.0)  # over eight dead timeouts of flood
        finally:
            flood.kill()
            flood.wait()
        assert [e for e in events if isinstance(e, MemberDown)] == []
        assert a.alive() == {"a", "b"}
        assert a.rejections()["unknown_address"] > 0, a.rejections()
    sa.close()
    sb.close()


async def test_a_stranger_that_becomes_a_member_is_no_longer_counted_as_unknown() -> None:
    """The verdict per source address is remembered for speed, and forgotten when the member list changes."""
    sa, sb, members = member_pair()
    a = MembershipService(Membership("a", SECRET, members), sock=sa)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.2", 0))
        junk = b"IL\x01" + os.urandom(120)  # right size and magic, wrong MAC

        async def counted(reason: str, at_least: int) -> None:
            deadline = time.monotonic() + 5
            while a.rejections()[reason] < at_least:
                assert time.monotonic() < deadline, a.rejections()
                stranger.sendto(junk, members["a"])
                await asyncio.sleep(0.02)

        async with a:
            await counted("unknown_address", 3)
            before = a.rejections()["unknown_address"]
            a.set_members({**members, "c": stranger.getsockname()})
            await counted("bad_mac", 3)  # now parsed as far as the MAC
            assert a.rejections()["unknown_address"] == before
    sa.close()
    sb.close()
