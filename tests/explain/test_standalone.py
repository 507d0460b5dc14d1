"""``ironlb explain --state DIR --status-dir D``: `ironlb run` nodes explained from their state directory and status files.

The status files are written as ``ironlb run`` writes them: its pure decision (``ironlb.standalone.decide``) for each
node, plus the ``announcing``, ``members`` and ``config`` parts of ``Runner._write_status``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from ironlb.plan import snapshot_from
from ironlb.standalone import statedir
from ironlb.standalone.decide import decide

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MEMBERS = ("node-a", "node-b", "node-c")

WEB = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  ports: [{port: 80, protocol: TCP}]
"""


def ironlb(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run([sys.executable, "-m", "ironlb", *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def status_of(state: Path, node: str, alive: tuple[str, ...], quorum: bool) -> dict[str, Any]:
    """What `ironlb run --node NODE --status-file F` writes for this membership view."""
    snapshot, _ = snapshot_from(statedir.load(state, "metallb-system"))
    d = decide(snapshot, node=node, members=MEMBERS, alive=alive, has_quorum=quorum)
    status = dict(d.plan)
    status["announcing"] = {"layer2": sorted(d.layer2), "bgp": []}
    status["bgpPeers"] = []
    status["node"] = node
    status["members"] = {"alive": sorted(alive), "quorum": quorum}
    status["config"] = {"valid": True, "error": None}
    return status


def setup(tmp_path: Path) -> tuple[Path, Path]:
    state, statuses = tmp_path / "state", tmp_path / "status"
    state.mkdir()
    statuses.mkdir()
    (state / "config.yaml").write_text((EXAMPLES / "crds.yaml").read_text())
    (state / "web.yaml").write_text(textwrap.dedent(WEB))
    return state, statuses


def write_statuses(state: Path, statuses: Path, views: dict[str, tuple[tuple[str, ...], bool]]) -> dict[str, Any]:
    out = {}
    for node, (alive, quorum) in views.items():
        out[node] = status_of(state, node, alive, quorum)
        (statuses / f"{node}.json").write_text(json.dumps(out[node]))
    return out


def test_all_members_agree(tmp_path: Path) -> None:
    state, statuses = setup(tmp_path)
    written = write_statuses(state, statuses, {n: (MEMBERS, True) for n in MEMBERS})
    elected = written["node-a"]["services"]["default/web"]["layer2"]["node"]
    r = ironlb("explain", "--state", state, "--status-dir", statuses, "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout)
    web = result["services"]["default/web"]
    assert web["ingress"] == written["node-a"]["services"]["default/web"]["ingress"] == ["192.168.1.240"]
    assert web["pool"] == "default" and web["poolReason"].startswith("auto-assigned")
    assert web["layer2"]["node"] == elected and web["layer2"]["announcedBy"] == [elected]
    assert {r["node"]: r["state"] for r in web["layer2"]["nodes"]}[elected] == "elected"
    assert result["membership"]["agree"] is True
    assert [c["name"] for c in result["configuration"]] == [f"node {n}" for n in MEMBERS]
    assert result["problems"] == []
    # one Service, as a table, through the kubectl plugin's entry point: no colour when stdout is not a terminal
    plugin = Path(sys.executable).parent / "kubectl-ironlb"
    r = subprocess.run([str(plugin), "explain", "--state", str(state), "--status-dir", str(statuses), "default/web"],
                       capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert r.returncode == 0 and "\x1b" not in r.stdout, r.stderr
    assert f"layer 2: elected {elected}" in r.stdout and f"announced by {elected}" in r.stdout


def test_partitioned_member_and_broken_status_file(tmp_path: Path) -> None:
    state, statuses = setup(tmp_path)
    majority = ("node-a", "node-b")
    write_statuses(state, statuses, {"node-a": (majority, True), "node-b": (majority, True),
                                     "node-c": (("node-c",), False)})
    (statuses / "zz-broken.json").write_text("{not json")
    r = ironlb("explain", "--state", state, "--status-dir", statuses, "-o", "json")
    assert r.returncode == 3, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert "the speakers' membership views disagree" in result["problems"]
    assert "node-c: no membership quorum" in result["problems"]
    broken = [c for c in result["configuration"] if c["name"] == "status file"]
    assert broken and "zz-broken.json: not a status file" in broken[0]["error"]
    # the majority's view is the election's: node-c is not live there
    rows = {r["node"]: r for r in result["services"]["default/web"]["layer2"]["nodes"]}
    assert rows["node-c"]["reason"] == "speakerNotLive"
    assert result["services"]["default/web"]["layer2"]["node"] in majority


def test_what_if_and_invalid_state(tmp_path: Path) -> None:
    state, statuses = setup(tmp_path)
    change = tmp_path / "change.yaml"
    change.write_text(textwrap.dedent("""
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: default, namespace: metallb-system}
        spec: {addresses: [192.168.1.245/32]}
    """))
    r = ironlb("explain", "--state", state, "--what-if", change, "-o", "json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["services"]["default/web"]["change"] == "moves"
    assert result["services"]["default/web"]["after"]["ingress"] == ["192.168.1.245"]
    r = ironlb("explain", "--state", state, "--what-if", change)
    assert "moves" in r.stdout and "192.168.1.240" in r.stdout and "192.168.1.245" in r.stdout
    # deleting the pool: the Service would lose its IP, and the reason is MetalLB's
    r = ironlb("explain", "--state", state, "--what-if-delete", "IPAddressPool/default", "-o", "json")
    assert r.returncode == 0, r.stderr
    web = json.loads(r.stdout)["services"]["default/web"]
    assert web["change"] == "losesIP" and web["reason"] == "no IPAddressPool is configured"
    r = ironlb("explain", "--state", state, "--what-if-delete", "IPAddressPool/nope")
    assert r.returncode == 1 and "no IPAddressPool named 'nope'" in r.stderr
    # an invalid what-if is refused with the configuration's errors
    change.write_text("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: x}\nspec: {addresses: [nope]}\n")
    r = ironlb("explain", "--state", state, "--what-if", change)
    assert r.returncode == 1 and "nope" in r.stderr and "Traceback" not in r.stderr
    # an invalid state directory is a configuration problem, explained, not a crash
    (state / "bad.yaml").write_text("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: y}\nspec: {addresses: [bad]}\n")
    r = ironlb("explain", "--state", state, "-o", "json")
    assert r.returncode == 3 and "Traceback" not in r.stderr
    result = json.loads(r.stdout)
    assert result["configuration"][0]["name"] == "state directory" and "bad" in result["configuration"][0]["error"]
    assert "no valid configuration is in force" in result["problems"]
