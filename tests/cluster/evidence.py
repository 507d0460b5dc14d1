"""What a failed cluster test prints besides its assertion: every speaker's log tail and the client probe's
notable lines, so that a CI failure explains itself after the cluster (and its logs) are gone.

Bounded: :data:`TAIL` lines per log, each cut to :data:`WIDTH` characters, :data:`PROBE_LINES` probe lines per file.
A pod that is deleted takes its log with it (the kubelet removes the files), so a test that deletes a speaker pod
follows its log first (:func:`follow_log`) into ``workdir/speaker-logs``, which :func:`speaker_evidence` includes.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from ironlb.lab.kube_cluster import KubeCluster

__all__ = ["follow_log", "speaker_evidence"]

TAIL = 150
WIDTH = 400
PROBE_LINES = 60
NAMESPACE = "metallb-system"


def _cut(lines: list[str], tail: int = TAIL) -> str:
    return "\n".join(line if len(line) <= WIDTH else line[:WIDTH] + " ..." for line in lines[-tail:])


def saved_logs(c: KubeCluster) -> Path:
    d = c.workdir / "speaker-logs"
    d.mkdir(exist_ok=True)
    return d


def follow_log(c: KubeCluster, pod: str) -> subprocess.Popen[bytes]:
    """``kubectl logs -f --timestamps`` of speaker ``pod`` into ``workdir/speaker-logs/<pod>.log`` until its
    container ends (or the caller terminates it): its log outlives the pod's deletion."""
    cmd = ["ip", "netns", "exec", c.cp, str(c.bin_dir / "kubectl"), f"--kubeconfig={c.kubeconfig}",
           "-n", NAMESPACE, "logs", "-f", "--timestamps", pod, "-c", "speaker"]
    with open(saved_logs(c) / f"{pod}.log", "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _pod_logs(c: KubeCluster) -> list[str]:
    parts: list[str] = []
    try:
        pods = c.get_json("-n", NAMESPACE, "pods", "-l", "component=speaker")["items"]
    except Exception as exc:  # the evidence must not hide the failure it explains
        return [f"speaker pods not listed: {exc}"]
    for pod in pods:
        name, node = pod["metadata"]["name"], pod["spec"].get("nodeName")
        statuses = pod.get("status", {}).get("containerStatuses") or []
        restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
        for previous in ([False, True] if restarts else [False]):
            args = ["-n", NAMESPACE, "logs", "--timestamps", f"--tail={TAIL}", name, "-c", "speaker"]
            r = c.kubectl(*args, *(["--previous"] if previous else []), check=False)
            what = "previous container" if previous else "current container"
            text = r.stdout if r.returncode == 0 else f"(kubectl logs failed: {r.stderr.strip()[-300:]})"
            parts.append(f"=== speaker pod {name} on {node}, {what} (restarts {restarts}) ===\n"
                         + _cut(text.splitlines()))
    return parts


def _probe_lines(path: Path) -> str:
    """A probe's ARP lines and failed attempts (its notable lines), and how many attempts it made."""
    notable: list[str] = []
    attempts = 0
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("ev") == "http":
            attempts += 1
            if event.get("ok"):
                continue
        notable.append(line)
    return f"=== probe {path.name}: {attempts} attempts; ARP and failed lines ===\n" + _cut(notable, PROBE_LINES)


def speaker_evidence(c: KubeCluster, since: float) -> str:
    """Every speaker pod's log tail (and its previous container's), the followed logs of deleted ones, and the
    probe files written since ``since`` (``time.time()``)."""
    wall = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    parts = [f"(collected at {wall}Z UTC = monotonic {time.monotonic():.3f}: the probe's times are monotonic)"]
    parts += _pod_logs(c)
    for f in sorted(saved_logs(c).glob("*.log")):
        parts.append(f"=== followed log {f.name} ===\n" + _cut(f.read_text(errors="replace").splitlines()))
    for f in sorted(c.workdir.glob("probe-*.jsonl")):
        if f.stat().st_mtime >= since:
            parts.append(_probe_lines(f))
    return "\n".join(parts)
