"""The fast path in a process of its own: membership, the ARP/NDP responders and BFD in a child process.

:mod:`.channel` (framing) and :mod:`.guard` (what the fast side answers for, and when it stops trusting the
heavy side) are sans-I/O; :mod:`.child` is the child process and :mod:`.parent` the heavy side's handle on it;
:mod:`.holds` (restart holds: stand-ins, the hold LEAVE) is the child's and thread mode's alike.
See ``docs/fastpath.md``.
"""
