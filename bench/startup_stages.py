"""Where ``ironlb run``'s CPU goes before its first announcement, stage by stage (issue 16, "fast start").

Each run is a new interpreter that imports what ``ironlb run`` imports, then reads ``bench/restarts.py``'s
1,000-Service state directory and decides as the runner does before it announces, timing each stage with
``time.process_time()`` (CPU time: a loaded machine inflates it far less than wall time): ``imports``, ``load_texts``
(YAML, the configuration models built and validated, the Services read), ``snapshot_from`` (the configuration
built), ``allocate`` (the controller's convergence of every Service), ``decide_early`` (this node's announcement),
then ``finish`` (the other speakers and the status, after the announcement). The process and the fast process's
start, the event loop and the announcement itself are not in it: ``bench/startup.py`` measures the whole.

Run from the repository root: ``python -m bench.startup_stages [--runs 8] [--services 1000] [--base DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.restarts import config
from ironlb.lab.failover import percentile

STAGES = ("imports", "load_texts", "snapshot_from", "allocate", "decide_early", "finish")

CODE = """
import gc, json, sys, time
gc.disable()
marks = {}
last = time.process_time()
def mark(name):
    global last
    now = time.process_time()
    marks[name] = now - last
    last = now
from ironlb.cli import main
import asyncio
from ironlb.standalone.runner import Runner, RunOptions
mark("imports")
from pathlib import Path
from ironlb.runtime import tune_gc
tune_gc()
from ironlb.config import load_texts
from ironlb.config.reading import ReadLimits
from ironlb.plan import allocate, snapshot_from
from ironlb.standalone import statedir
from ironlb.standalone.decide import decide_early, with_member_nodes
last = time.process_time()
texts = statedir.read(Path(sys.argv[1]), ReadLimits())
resources = load_texts(texts, default_namespace="metallb-system", max_chars=ReadLimits().file_bytes)
mark("load_texts")
snapshot, _ = snapshot_from(resources, namespace="metallb-system")
mark("snapshot_from")
allocated = allocate(with_member_nodes(snapshot, ["n1"]))
mark("allocate")
early = decide_early(snapshot, node="n1", members={"n1"}, alive={"n1"}, allocated=allocated)
mark("decide_early")
early.finish()
mark("finish")
print(json.dumps(marks))
"""


def one_run(state: Path, src: str | None) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=src) if src else None
    out = subprocess.run([sys.executable, "-c", CODE, str(state)], capture_output=True, text=True, env=env, check=True)
    return {k: v * 1000 for k, v in json.loads(out.stdout).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--base", metavar="DIR", help="also measure the checkout DIR (its src/ first on the path)")
    args = parser.parse_args(argv)
    sources = {"": None, **({" (base)": os.path.join(args.base, "src")} if args.base else {})}
    rows: dict[str, list[dict[str, float]]] = {tag: [] for tag in sources}
    with tempfile.TemporaryDirectory(prefix="ironlb-stages-") as tmp:
        state = Path(tmp)
        base, services = config(args.services, gr=False)
        (state / "config.yaml").write_text(base)
        (state / "services.yaml").write_text(services)
        for _ in range(args.runs):  # interleaved: a change in the machine's load hits both alike
            for tag, src in sources.items():
                rows[tag].append(one_run(state, src))
    print(f"{args.services} Services, {args.runs} runs, CPU ms p50 (min-max), load average {os.getloadavg()[0]:.1f}")
    for tag, runs in rows.items():
        cells = [f"{s} {percentile([r[s] for r in runs], 50):.0f} ({min(r[s] for r in runs):.0f}-"
                 f"{max(r[s] for r in runs):.0f})" for s in STAGES]  # fmt: skip
        total = [sum(r[s] for s in STAGES[:-1]) for r in runs]
        print(f"  {tag.strip() or 'this checkout'}: " + ", ".join(cells) + f"; to the announcement "
              f"{percentile(total, 50):.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
