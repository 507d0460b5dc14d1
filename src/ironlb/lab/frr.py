"""FRR daemons in a network namespace, each instance in its own directory (the lab-notes recipe).

The demo's router, the BGP and BFD interop tests and the benchmarks all start FRR through this class. Processes go
through :meth:`NetnsLab.popen`, so the lab kills them by PID at cleanup.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ironlb.lab.netns import NetnsLab
from ironlb.lab.waits import WaitTimeout, wait_until

FRR_DIR = Path("/usr/lib/frr")
# What vtysh raises while a daemon is starting: it exits non-zero (not listening yet) or prints a partial document.
VTYSH_NOT_READY: tuple[type[BaseException], ...] = (subprocess.CalledProcessError, ValueError)


def frr_missing(daemons: Sequence[str] = ("zebra", "bgpd")) -> str | None:
    """None when the FRR daemons and vtysh are installed, else why not."""
    for daemon in daemons:
        if not (FRR_DIR / daemon).exists():
            return f"FRR not installed ({FRR_DIR / daemon} missing; apt-get install frr)"
    if shutil.which("vtysh") is None:
        return "vtysh missing"
    return None


class FRRInstance:
    """zebra plus the given daemons of one namespace, configured and queried through vtysh."""

    def __init__(self, lab: NetnsLab, ns: str, daemons: Sequence[str] = ("zebra", "bgpd")) -> None:
        self.lab = lab
        self.ns = ns
        self.daemons = tuple(daemons)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{lab.prefix}-frr-"))
        os.chmod(self.dir, 0o777)
        (self.dir / "empty.conf").write_text("")
        (self.dir / "vtysh.conf").write_text("service integrated-vtysh-config\n")
        shutil.chown(self.dir, "frr", "frr")

    def start(self) -> None:
        d = str(self.dir)
        common = ["-u", "frr", "-g", "frr", "-P", "0", "--vty_socket", d, "-f", f"{d}/empty.conf"]
        common += ["-z", f"{d}/zserv.api"]
        for daemon in self.daemons:
            cmd = [str(FRR_DIR / daemon), *common, "--log", f"file:{d}/{daemon}.log", "-i", f"{d}/{daemon}.pid"]
            if daemon == "bfdd":
                cmd += ["--bfdctl", f"{d}/bfdd.sock"]
            self.lab.popen(self.ns, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._wait_for(self.dir / f"{daemon}.vty")

    def _wait_for(self, path: Path, timeout: float = 10.0) -> None:
        try:
            wait_until(path.exists, timeout, f"{path} to appear", interval=0.02)
        except WaitTimeout as err:
            raise TimeoutError(f"{err}; logs: {self.logs()}") from None

    def vtysh(self, *commands: str) -> str:
        args = ["vtysh", "--vty_socket", str(self.dir), "--config_dir", str(self.dir)]
        for c in commands:
            args += ["-c", c]
        return subprocess.run(args, capture_output=True, text=True, timeout=20, check=True).stdout

    def configure(self, config: str) -> None:
        conf = self.dir / "router.conf"
        conf.write_text(config)
        out = subprocess.run(
            ["vtysh", "--vty_socket", str(self.dir), "--config_dir", str(self.dir), "-f", str(conf)],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"vtysh -f failed: {out.stdout} {out.stderr}")

    def json(self, command: str) -> Any:
        return json.loads(self.vtysh(command) or "{}")

    def bfd_peer(self, peer: str) -> dict[str, Any] | None:
        """The entry of ``show bfd peers json`` for ``peer`` (None if absent)."""
        for entry in self.json("show bfd peers json"):
            if entry.get("peer") == peer:
                return dict(entry)
        return None

    def bfd_status(self, peer: str) -> str | None:
        entry = self.bfd_peer(peer)
        return str(entry["status"]) if entry else None

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.dir.glob("*.log"))

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
