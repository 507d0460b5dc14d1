"""Membership on the wire: N real ``ironlb run`` processes on one LAN in network namespaces (issue 15).

The simulation (``bench/membership_scale.py``) prices the membership core; this run prices what a node really pays:
N nodes of ``ironlb run`` (the seed example: one Layer 2 Service) on one bridge, each in its own namespace, with the
default timings. Once every node sees all N alive with quorum, and after a warm-up, each node's kernel UDP counters
(``/proc/PID/net/snmp`` of its process: its namespace's, and only ironlb sends UDP there) and the CPU time of its
process tree (``/proc/PID/stat`` utime + stime, all threads, plus any child process) are read twice ``--seconds``
apart. Then ``--trials`` failovers of the seed IP (the announcer's link down and ``kill -9``, as
``bench/l2_failover.py``) give detection and take-over times at that size.

    .venv/bin/python -m bench.membership_wire [--nodes 50] [--seconds 30] [--trials 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.support.cluster_run import cluster_run, unwind_on_sigterm
from tests.support.waits import WaitTimeout, wait_until

from bench.l2_failover import failover_trials, fmt, stats
from ironlb.lab.cluster import StandaloneCluster
from ironlb.lab.lan import build_lan, start_http_servers
from ironlb.lab.netns import netns_available

TICK = os.sysconf("SC_CLK_TCK")


def udp_counters(pid: int) -> tuple[int, int]:
    """(InDatagrams, OutDatagrams) of the network namespace ``pid`` lives in."""
    lines = [line.split() for line in Path(f"/proc/{pid}/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    fields = dict(zip(lines[0][1:], (int(v) for v in lines[1][1:]), strict=True))
    return fields["InDatagrams"], fields["OutDatagrams"]


def children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def cpu_seconds(pid: int, tree: dict[int, list[int]], *, system_only: bool = False) -> float:
    """utime + stime (or stime alone) of ``pid`` (all its threads) and of its descendants."""
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[12]) + (0 if system_only else int(fields[11]))) / TICK
        stack.extend(tree.get(p, []))
    return total


def wakeups(pid: int) -> int:
    """Voluntary context switches of ``pid``'s main thread: how often it slept and was woken."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("voluntary_ctxt")), 0)


@dataclass(frozen=True)
class Sample:
    """One node's counters at one time (seconds of CPU, datagrams, wake-ups)."""

    rx: int
    tx: int
    cpu: float  # the whole process tree
    main: float  # the main process alone
    fast_system: float  # the fast process's system time (syscalls, the network stack)
    fast_wakeups: int


def sample(cluster: StandaloneCluster) -> dict[str, Sample]:
    tree = children()
    out = {}
    for node in cluster.node_names:
        pid = cluster.procs[node].pid
        rx, tx = udp_counters(pid)
        fast = tree.get(pid, [])
        out[node] = Sample(
            rx, tx, cpu_seconds(pid, tree), cpu_seconds(pid, {}),
            sum(cpu_seconds(f, {}, system_only=True) for f in fast), sum(wakeups(f) for f in fast),
        )  # fmt: skip
    return out


def profile_one(cluster: StandaloneCluster, out: Path, seconds: float) -> None:
    """py-spy samples (``--nonblocking``, 100 Hz) of the first node's main and fast process, one after the other."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        print(f"  --profile: {spy} is missing (pip install py-spy); no profile taken")
        return
    out.mkdir(parents=True, exist_ok=True)
    node = sorted(cluster.node_names)[0]
    main_pid = cluster.procs[node].pid
    for role, pid in [("main", main_pid), *(("fast", p) for p in children().get(main_pid, []))]:
        target = out / f"{role}-{pid}.txt"
        subprocess.run(
            [str(spy), "record", "--nonblocking", "--format", "raw",
             "--rate", "100", "--duration", str(int(seconds)), "--pid", str(pid), "--output", str(target)],
            check=False, capture_output=True,
        )  # fmt: skip
        print(f"  py-spy of {node}'s {role} process ({pid}): {target}")


def all_agree(cluster: StandaloneCluster) -> bool:
    everyone = sorted(cluster.node_names)
    for node in everyone:
        st = cluster.status(node) or {}
        members = st.get("members", {})
        if members.get("alive") != everyone or not members.get("quorum"):
            return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=10.0, help="steady time before measuring, s")
    parser.add_argument("--trials", type=int, default=5, help="failovers of the seed IP (default %(default)s)")
    parser.add_argument(
        "--profile", type=Path, help="after the window, sample one node's processes with py-spy into this directory"
    )
    args = parser.parse_args(argv)
    if not 2 <= args.nodes <= 88:
        parser.error("--nodes must be 2..88 (one /24: nodes .11 up, the client is .100)")
    reason = netns_available()
    if reason:
        print(f"membership_wire: {reason}", file=sys.stderr)
        return 2

    unwind_on_sigterm()
    prefix = f"ilbmw{secrets.token_hex(3)}"
    print(
        f"ironlb membership on the wire, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, kernel {platform.release()}, Python {platform.python_version()}"
    )
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    with cluster_run(prefix, tail_nodes=3) as run:
        lan = build_lan(run.lab, nodes=args.nodes)
        start_http_servers(lan)
        run.cluster = cluster = StandaloneCluster(lan, run.workdir)
        cluster.apply_seed()
        t0 = time.monotonic()
        cluster.start_all()
        try:
            wait_until(lambda: all_agree(cluster), 600, f"all {args.nodes} nodes agree", interval=0.2)
        except WaitTimeout:
            bad = {n: (cluster.status(n) or {}).get("members") for n in cluster.node_names}
            raise RuntimeError(f"membership did not converge: {bad}") from None
        print(
            f"{args.nodes} processes started; all agree on {args.nodes} alive with quorum after "
            f"{time.monotonic() - t0:.1f} s (starting {args.nodes} Python processes on {os.cpu_count()} cores)"
        )
        time.sleep(args.warmup)
        before = sample(cluster)
        w0 = time.monotonic()
        time.sleep(args.seconds)
        after = sample(cluster)
        window = time.monotonic() - w0
        if not all_agree(cluster):
            print("WARNING: a node's view changed during the window (a false death?)")
        rates = []
        cpus, mains, systems, wakes = [], [], [], []
        for node in cluster.node_names:
            a, b = after[node], before[node]
            rates.append(((a.rx - b.rx) / window, (a.tx - b.tx) / window))
            cpus.append((a.cpu - b.cpu) / window * 100)
            mains.append((a.main - b.main) / window * 100)
            systems.append((a.fast_system - b.fast_system) / window * 100)
            wakes.append((a.fast_wakeups - b.fast_wakeups) / window)
        ins = [r[0] for r in rates]
        outs = [r[1] for r in rates]
        total = [a + b for a, b in rates]
        print(f"steady state over {window:.1f} s, per node (kernel UDP counters of its namespace):")
        print(f"  datagrams/s in  : mean {statistics.mean(ins):.0f}, max {max(ins):.0f}")
        print(f"  datagrams/s out : mean {statistics.mean(outs):.0f}, max {max(outs):.0f}")
        print(f"  datagrams/s in+out: mean {statistics.mean(total):.0f}, max {max(total):.0f}")
        print(
            f"  CPU (process tree, all threads): mean {statistics.mean(cpus):.2f} %, "
            f"median {statistics.median(cpus):.2f} %, max {max(cpus):.2f} % of a core"
        )
        fasts = [c - m for c, m in zip(cpus, mains, strict=True)]
        print(f"    main process: mean {statistics.mean(mains):.2f} %, max {max(mains):.2f} %")
        print(
            f"    fast process: mean {statistics.mean(fasts):.2f} % (system time {statistics.mean(systems):.2f} %), "
            f"max {max(fasts):.2f} %; {statistics.mean(wakes):.0f} wake-ups/s"
        )
        if args.profile:
            profile_one(cluster, args.profile, args.seconds)
        if args.trials:
            results = failover_trials(cluster, args.trials, 1.0)
            print("failover summary")
            for key, values in (
                ("detect", [r.detect_ms for r in results]),
                ("announce", [r.announce_ms for r in results]),
                ("total", [r.total_ms for r in results]),
            ):
                print(f"  {key:<9} {fmt(stats([v for v in values if v is not None]))}")
            errors = [r.error for r in results if r.error]
            if errors:
                print(f"  {len(errors)} trial(s) failed: {errors}")
    print("load average at end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
