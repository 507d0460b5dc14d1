"""Nobody but ironlb's own user can bind the membership port, and the per-member sockets still work (issue 9).

The per-member sockets share the port with the main one. With ``SO_REUSEADDR`` on the main socket any local
process that set it too could bind the same port (on the same or the wildcard address) and take datagrams;
with ``SO_REUSEPORT`` instead the kernel admits only sockets of the same effective UID. Shown in a namespace of
its own (port 7946 is free there): two live nodes, binds tried by a child that dropped to another UID, then a junk
flood that would cost a heartbeat if the members' datagrams did not land on their own sockets.
"""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Iterator

import pytest
from tests.support.netns import NetnsLab, fresh_lab

pytestmark = pytest.mark.netns

SCRIPT = r"""
import asyncio, json, os, socket, subprocess, sys, time
from ironlb.membership import MemberDown, Membership, MembershipService

SECRET = b"port-owner-test-secret-0123456789"
MEMBERS = {"a": ("127.0.0.1", 7946), "b": ("127.0.0.2", 7946)}
NOBODY = 65534
FLOOD = '''
import socket, sys, time
junk = b"IL\x01" + bytes(120)
end = time.monotonic() + float(sys.argv[1])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind(("127.0.0.3", 0))
    while time.monotonic() < end:  # bounded in time
        for _ in range(100):
            try:
                s.sendto(junk, ("127.0.0.1", 7946))
            except OSError:
                pass
'''


def try_bind(uid, addr, reuse):
    # 0 if a child running as ``uid`` (None: ours) could bind ``addr``, else the errno.
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if reuse:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(addr)
        except OSError as exc:
            code = exc.errno or 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


async def main():
    events = []
    a = MembershipService(Membership("a", SECRET, MEMBERS), on_event=events.append)
    b = MembershipService(Membership("b", SECRET, MEMBERS))
    out = {}
    async with a, b:
        deadline = time.monotonic() + 10
        while a.alive() != {"a", "b"} or b.alive() != {"a", "b"}:
            assert time.monotonic() < deadline, (a.alive(), b.alive())
            await asyncio.sleep(0.02)
        out["peer_addresses"] = sorted(list(x) for x in a.peer_addresses)
        out["binds"] = {
            "other_uid_same_address": try_bind(NOBODY, ("127.0.0.1", 7946), True),
            "other_uid_wildcard": try_bind(NOBODY, ("0.0.0.0", 7946), True),
            "same_uid_without_reuse": try_bind(None, ("127.0.0.1", 7946), False),
            "other_uid_free_port": try_bind(NOBODY, ("127.0.0.1", 7947), True),
        }
        events.clear()
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, "3"])
        try:
            await asyncio.sleep(3.0)
        finally:
            flood.kill()
            flood.wait()
        out["downs"] = [str(e) for e in events if isinstance(e, MemberDown)]
        out["alive"] = sorted(a.alive())
        out["unknown_address"] = a.rejections()["unknown_address"]
        out["stale"] = a.rejections()["stale"]
    print(json.dumps(out))


asyncio.run(main())
"""


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    with fresh_lab() as lab:
        yield lab


def test_another_user_cannot_bind_the_membership_port_and_members_keep_their_sockets(lab: NetnsLab) -> None:
    ns = lab.netns("port")
    r = lab.run(ns, [sys.executable, "-c", SCRIPT], check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["binds"] == {
        "other_uid_same_address": errno.EADDRINUSE,
        "other_uid_wildcard": errno.EADDRINUSE,
        "same_uid_without_reuse": errno.EADDRINUSE,  # a second ironlb
        "other_uid_free_port": 0,  # the child could bind at all: the refusals above are the port's
    }
    assert out["peer_addresses"] == [["127.0.0.2", 7946]]
    # The flood filled the main socket; b's heartbeats came through its own socket, on time.
    assert out["downs"] == []
    assert out["alive"] == ["a", "b"]
    assert out["unknown_address"] > 0
    assert out["stale"] == 0
