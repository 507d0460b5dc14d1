"""Network-namespace labs: the demo, the benchmarks and the tests build their hosts with these (root only).

Everything a :class:`NetnsLab` creates carries its unique prefix and lives inside
namespaces it created itself: veth pairs are created inside a namespace and their
peers moved straight into another, so the host namespace is never touched. Cleanup
kills only the processes the lab started (by PID, then their process groups: what they
started themselves) and deletes only its namespaces. A lab made with ``die_with_us`` (the
benchmarks') also has the kernel kill its processes when the process that started them
dies, even by SIGKILL, when no clean-up code can run.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from ironlb.lab.waits import wait_until

# Sysctls from the lab notes: no DAD wait, keep static IPv6 addresses on link down.
DEFAULT_SYSCTLS: dict[str, str] = {
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
    "net.ipv6.conf.all.keep_addr_on_down": "1",
    "net.ipv6.conf.default.keep_addr_on_down": "1",
}


PR_SET_PDEATHSIG = 1
"""prctl(2): the signal a process gets when the thread that forked it exits."""


def _dying_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when ``parent`` goes (and exits at once if it is already gone)."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def netns_available() -> str | None:
    """None when namespaces can be used here, else the reason to skip."""
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    probe = f"ilbprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot create network namespaces: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


class NetnsLab:
    """Namespaces, links and processes of one test, removed by :meth:`cleanup`."""

    def __init__(self, prefix: str | None = None, *, die_with_us: bool = False) -> None:
        # Short: interface names are limited to 15 characters.
        self.prefix = prefix or f"t{secrets.token_hex(3)}"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[str]] = []
        self.die_with_us = die_with_us
        """Processes started by :meth:`popen` are killed by the kernel when the thread that started them exits
        (``PR_SET_PDEATHSIG``): for a benchmark's main thread, not for code that starts them from worker threads."""

    # ------------------------------------------------------------------ topology
    def netns(self, suffix: str, sysctls: dict[str, str] | None = None) -> str:
        """Create namespace ``<prefix>-<suffix>`` with lo up and the lab sysctls set."""
        name = f"{self.prefix}-{suffix}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, text=True)
        self.namespaces.append(name)
        self.run(name, ["ip", "link", "set", "lo", "up"])
        for key, value in {**DEFAULT_SYSCTLS, **(sysctls or {})}.items():
            self.run(name, ["sysctl", "-qw", f"{key}={value}"])
        return name

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str, mac_a: str | None = None) -> None:
        """A veth pair created inside ``ns_a`` with its peer moved straight into ``ns_b``."""
        cmd = ["ip", "-n", ns_a, "link", "add", name_a]
        if mac_a:
            cmd += ["address", mac_a]
        cmd += ["type", "veth", "peer", "name", name_b, "netns", ns_b]
        subprocess.run(cmd, check=True, capture_output=True, text=True)

    def bridge(self, ns: str, name: str, ports: Sequence[str]) -> None:
        """A Linux bridge in ``ns`` enslaving ``ports``, everything up."""
        self.run(ns, ["ip", "link", "add", name, "type", "bridge"])
        for port in ports:
            self.run(ns, ["ip", "link", "set", port, "master", name])
            self.run(ns, ["ip", "link", "set", port, "up"])
        self.run(ns, ["ip", "link", "set", name, "up"])

    def addr(self, ns: str, dev: str, *cidrs: str) -> None:
        """Assign addresses (IPv6 ones with ``nodad``) and bring ``dev`` up."""
        for cidr in cidrs:
            extra = ["nodad"] if ":" in cidr else []
            self.run(ns, ["ip", "addr", "add", cidr, "dev", dev, *extra])
        self.run(ns, ["ip", "link", "set", dev, "up"])

    # ------------------------------------------------------------------ running
    def run(
        self, ns: str, cmd: Sequence[str], *, check: bool = True, timeout: float = 20.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in ``ns`` and wait for it."""
        return subprocess.run(
            ["ip", "netns", "exec", ns, *cmd], check=check, capture_output=True, text=True, timeout=timeout
        )

    def popen(self, ns: str, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``cmd`` in ``ns``, in a process group of its own; the lab kills it and its group at cleanup."""
        kwargs.setdefault("start_new_session", True)
        if self.die_with_us:
            kwargs.setdefault("preexec_fn", _dying_with(os.getpid()))
        proc: subprocess.Popen[str] = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], text=True, **kwargs)
        self.processes.append(proc)
        return proc

    def link_json(self, ns: str, dev: str) -> dict[str, Any]:
        """``ip -j addr show dev`` as a dict (MAC in ``address``, addresses in ``addr_info``)."""
        out = self.run(ns, ["ip", "-j", "addr", "show", "dev", dev]).stdout
        data: list[dict[str, Any]] = json.loads(out)
        return data[0]

    def mac(self, ns: str, dev: str) -> str:
        return str(self.link_json(ns, dev)["address"])

    def wait_link_local(self, ns: str, dev: str, timeout: float = 5.0) -> str:
        """Wait until ``dev`` has an IPv6 link-local address (needed for NDP responders)."""

        def link_local() -> str | None:
            for info in self.link_json(ns, dev).get("addr_info", []):
                if info.get("family") == "inet6" and str(info.get("local", "")).startswith("fe80:"):
                    return str(info["local"])
            return None

        return wait_until(link_local, timeout, f"a link-local address on {dev} in {ns}")

    def neighbour(self, ns: str, dev: str, ip: str) -> dict[str, Any] | None:
        """The kernel neighbour entry for ``ip`` on ``dev`` in ``ns``, or None."""
        family = "-6" if ":" in ip else "-4"
        out = self.run(ns, ["ip", family, "-j", "neigh", "show", ip, "dev", dev]).stdout
        entries: list[dict[str, Any]] = json.loads(out or "[]")
        return entries[0] if entries else None

    # ------------------------------------------------------------------ cleanup
    def cleanup(self) -> None:
        """Stop our processes (SIGTERM by PID, SIGKILL after 3 s, then the rest of their process groups: what
        they started), then delete our namespaces (their links go with them)."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=3)
        for proc in self.processes:
            kill_group(proc)
        self.processes.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.namespaces.clear()


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL what is left of the process group ``proc`` leads (started with ``start_new_session``)."""
    with contextlib.suppress(OSError):
        if os.getpgid(proc.pid) != proc.pid:
            return  # reaped, and the number taken by another process: not ours
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
