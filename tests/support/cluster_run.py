"""One benchmark run of an ``ironlb run`` cluster in a lab: its clean-up and, when it fails, the nodes' log tails.

``bench/l2_failover.py``, ``bench/chaos.py`` and ``bench/membership_wire.py`` build a LAN and a
:class:`StandaloneCluster` in it; whatever happens (an error, Ctrl-C, SIGTERM, SIGHUP), the cluster is closed, the
lab's namespaces and processes go and the work directory is removed, without a second signal interrupting that.
Should the benchmark be killed outright (SIGKILL: no clean-up runs), the kernel kills the nodes it started
(:class:`NetnsLab` ``die_with_us``); their fast processes follow when their channel closes, and only the empty
namespaces stay behind.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ironlb.lab.cluster import StandaloneCluster
from ironlb.lab.demo import ignoring_signals
from ironlb.lab.netns import NetnsLab

__all__ = ["ClusterRun", "cluster_run", "exit_with", "unwind_on_sigterm"]


@dataclass
class ClusterRun:
    """The lab and work directory of one run; set ``cluster`` once it is built, so it is closed at the end."""

    lab: NetnsLab
    workdir: Path
    cluster: StandaloneCluster | None = None


@contextmanager
def cluster_run(prefix: str, *, tail: int = 15, tail_nodes: int | None = None) -> Iterator[ClusterRun]:
    """A lab with namespace prefix ``prefix`` and a work directory, removed on the way out.

    On any exception (KeyboardInterrupt and SystemExit included) the last ``tail`` log lines of the first
    ``tail_nodes`` nodes (all by default) go to stderr before it propagates.
    """
    run = ClusterRun(NetnsLab(prefix, die_with_us=True), Path(tempfile.mkdtemp(prefix=f"{prefix}-")))
    previous = {s: signal.signal(s, _exit_on) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield run
    except BaseException:
        if run.cluster is not None:
            for node in run.cluster.node_names[:tail_nodes]:
                print(f"--- {node} log tail", file=sys.stderr)
                print("\n".join(run.cluster.log(node).splitlines()[-tail:]), file=sys.stderr)
        raise
    finally:
        with ignoring_signals(signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if run.cluster is not None:
                run.cluster.close()
            run.lab.cleanup()
            shutil.rmtree(run.workdir, ignore_errors=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _exit_on(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP during a run: unwind through the clean-up, as Ctrl-C does."""
    raise SystemExit(128 + signum)


def unwind_on_sigterm() -> None:
    """From now on SIGTERM unwinds the benchmark (SystemExit 143) through its clean-up, as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _exit_on)


def exit_with(name: str, main: Callable[[], int]) -> None:
    """Run a benchmark's ``main`` as the process: its code, 130 on Ctrl-C, 1 with one line for a failed command."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except subprocess.CalledProcessError as err:
        print(f"{name}: {err}: {err.stderr}", file=sys.stderr)
        sys.exit(1)
