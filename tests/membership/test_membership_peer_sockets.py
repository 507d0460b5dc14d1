"""A node opens a socket of its own only for its neighbours, so 1,000 members cost at most ``2 * rings`` of them."""

from __future__ import annotations

import os
import socket

from ironlb.membership import Membership, MembershipConfig, MembershipService

SECRET = b"peer-socket-test-secret-0123456789"


def _members(n: int, own: tuple[str, int]) -> dict[str, tuple[str, int]]:
    """``node-0000`` at ``own``, the others on distinct loopback addresses (nothing listens there)."""
    members = {"node-0000": own}
    for i in range(1, n):
        members[f"node-{i:04d}"] = (f"127.{1 + i // 250}.{i % 250}.1", 7946)
    return members


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_thousand_members_open_sockets_only_for_the_neighbours() -> None:
    """Not one socket per member: the default descriptor limit (1,024) would run out at 1,000 members."""
    main = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    main.bind(("127.0.0.1", 0))
    own = main.getsockname()
    cfg = MembershipConfig()
    core = Membership("node-0000", SECRET, _members(1000, own), cfg)
    svc = MembershipService(core, sock=main)
    before = _open_fds()
    async with svc:
        neighbours = core.neighbours()
        assert 0 < len(neighbours) <= 2 * cfg.rings
        members = core.members()
        assert svc.peer_addresses == frozenset(members[n] for n in neighbours)
        assert svc.urgent_port is not None
        assert _open_fds() - before <= 2 * cfg.rings + 1  # and the one notices and LEAVEs go from

        # The member list shrinks to a full mesh: every member is a neighbour and has a socket.
        small = _members(5, own)
        svc.set_members(small)
        assert svc.peer_addresses == frozenset(a for n, a in small.items() if n != "node-0000")

        # And grows again: the sockets of members that are no longer neighbours are closed.
        svc.set_members(_members(1000, own))
        assert svc.peer_addresses == frozenset(core.members()[n] for n in core.neighbours())
        assert _open_fds() - before <= 2 * cfg.rings + 1
    assert _open_fds() < before  # stop closed the main socket, every peer socket and the notices' one
