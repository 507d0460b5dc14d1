"""FRR-in-a-namespace helpers for the BGP interop tests (lab-notes.md recipe)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns import NetnsLab, netns_available

FRR_DIR = Path("/usr/lib/frr")
HERE = Path(__file__).resolve().parent


def frr_missing() -> str | None:
    """None when FRR's daemons and vtysh are installed, else why not."""
    for path in (FRR_DIR / "zebra", FRR_DIR / "bgpd"):
        if not path.exists():
            return f"FRR not installed ({path} missing; apt-get install frr)"
    if shutil.which("vtysh") is None:
        return "vtysh missing"
    return None


class FRR:
    """zebra + bgpd of one namespace, with their own directory for pid files, sockets and logs."""

    def __init__(self, lab: NetnsLab, ns: str) -> None:
        self.lab = lab
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix=f"{lab.prefix}-frr-"))
        os.chmod(self.dir, 0o777)
        (self.dir / "empty.conf").write_text("")
        (self.dir / "vtysh.conf").write_text("service integrated-vtysh-config\n")
        shutil.chown(self.dir, "frr", "frr")

    def start(self) -> None:
        d = str(self.dir)
        common = ["-u", "frr", "-g", "frr", "-P", "0", "--vty_socket", d, "-f", f"{d}/empty.conf"]
        common += ["-z", f"{d}/zserv.api"]
        for daemon in ("zebra", "bgpd"):
            cmd = [str(FRR_DIR / daemon), *common, "--log", f"file:{d}/{daemon}.log", "-i", f"{d}/{daemon}.pid"]
            self.lab.popen(self.ns, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._wait_for(self.dir / f"{daemon}.vty")

    def _wait_for(self, path: Path, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not appear; logs: {self.logs()}")
            time.sleep(0.05)

    def vtysh(self, *commands: str) -> str:
        args = ["vtysh", "--vty_socket", str(self.dir), "--config_dir", str(self.dir)]
        for c in commands:
            args += ["-c", c]
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True)
        return out.stdout

    def configure(self, config: str) -> None:
        conf = self.dir / "router.conf"
        conf.write_text(config)
        subprocess.run(
            ["vtysh", "--vty_socket", str(self.dir), "--config_dir", str(self.dir), "-f", str(conf)],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )

    def json(self, command: str) -> Any:
        return json.loads(self.vtysh(command) or "{}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.dir.glob("*.log"))

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class Speaker:
    """speaker_proc.py running in a namespace; JSON lines both ways."""

    def __init__(self, lab: NetnsLab, ns: str, config: dict[str, Any]) -> None:
        self.proc = lab.popen(
            ns,
            [sys.executable, str(HERE / "speaker_proc.py"), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(HERE.parent.parent / "src")},
        )
        self.lines: list[dict[str, Any]] = []
        assert self.read(10) == {"ready": True}

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("speaker did not answer")
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"speaker exited with {self.proc.wait()}: {err}")
        msg: dict[str, Any] = json.loads(line)
        self.lines.append(msg)
        return msg

    def wait_for(self, key: str, value: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {key}={value} from speaker; saw {self.lines}")
            msg = self.read(left)
            if msg.get(key) == value:
                return msg

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()


@pytest.fixture
def netns_lab() -> Iterator[NetnsLab]:
    reason = netns_available() or frr_missing()
    if reason:
        pytest.skip(reason)
    lab = NetnsLab()
    try:
        yield lab
    finally:
        lab.cleanup()
