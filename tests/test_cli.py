"""The offline commands' contract: exit codes, output shapes, the seed example end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def ironlb(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ironlb", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_validate_seed_example() -> None:
    for name in ("metallb-config.yaml", "crds.yaml"):
        r = ironlb("validate", EXAMPLES / name)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("\n") == 1
        assert r.stdout.startswith("valid: 1 IPAddressPool(s), 1 L2Advertisement(s)")


def test_validate_reports_every_error_on_stderr(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: a, namespace: metallb-system}
        spec: {addresses: ["10.0.0.0/24"]}
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: b, namespace: metallb-system}
        spec: {addresses: ["10.0.0.128/25", "1.2.3.4"]}
        """,
    )
    r = ironlb("validate", bad)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert any('invalid CIDR "1.2.3.4"' in line and 'IPAddressPool "b"' in line for line in lines), lines
    assert all(line.strip() for line in lines)


def test_convert_seed_example_matches_the_crd_example() -> None:
    r = ironlb("convert", EXAMPLES / "metallb-config.yaml")
    assert r.returncode == 0, r.stderr
    import yaml

    produced = [d for d in yaml.safe_load_all(r.stdout) if d]
    expected = [d for d in yaml.safe_load_all((EXAMPLES / "crds.yaml").read_text()) if d]
    assert produced == expected


def test_convert_namespace_flag(tmp_path: Path) -> None:
    cm = write(
        tmp_path,
        "cm.yaml",
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: config}
        data:
          config: |
            address-pools:
            - name: Bad_Name
              protocol: bgp
              addresses: [10.0.0.0/24]
        """,
    )
    r = ironlb("convert", cm, "--namespace", "lb")
    assert r.returncode == 0, r.stderr
    import yaml

    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert {(d["kind"], d["metadata"]["name"], d["metadata"]["namespace"]) for d in docs} == {
        ("IPAddressPool", "bad-name", "lb"),
        ("BGPAdvertisement", "bgpadvertisement1", "lb"),
    }


def test_plan_seed_example() -> None:
    r = ironlb("plan", EXAMPLES / "metallb-config.yaml", EXAMPLES / "my-service.yaml")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["services"] == {
        "default/my-service": {
            "ingress": ["192.168.1.240"],
            "pool": "default",
            "events": [{"type": "Normal", "reason": "IPAllocated", "message": 'Assigned IP ["192.168.1.240"]'}],
            # No EndpointSlice in the input: no serving endpoint, so nobody announces (MetalLB's notOwner).
            "layer2": {"node": None, "reason": "notOwner", "interfaces": []},
            "bgp": [],  # no BGPAdvertisement: nothing to advertise
        }
    }
    assert plan["pools"] == {"default": {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 10, "availableIPv6": 0}}


CLUSTER = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: small, namespace: metallb-system}
spec: {addresses: ["10.0.0.1-10.0.0.2", "fc00::/127"]}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: oldest, namespace: a, creationTimestamp: "2024-01-01T00:00:00Z"}
  spec: {type: LoadBalancer, ports: [{port: 80}]}
- apiVersion: v1
  kind: Service
  metadata: {name: holder, namespace: b, creationTimestamp: "2025-01-01T00:00:00Z"}
  spec: {type: LoadBalancer, ports: [{port: 80}], clusterIP: 10.96.0.5}
  status: {loadBalancer: {ingress: [{ip: 10.0.0.2}]}}
- apiVersion: v1
  kind: Service
  metadata: {name: late, namespace: a, creationTimestamp: "2025-06-01T00:00:00Z"}
  spec: {type: LoadBalancer, ports: [{port: 80}]}
- apiVersion: v1
  kind: Service
  metadata: {name: v6, namespace: a}
  spec: {type: LoadBalancer, ports: [{port: 80}], ipFamilies: [IPv6]}
- apiVersion: v1
  kind: Service
  metadata: {name: other-class, namespace: a}
  spec: {type: LoadBalancer, loadBalancerClass: example.com/other, ports: [{port: 80}]}
- apiVersion: v1
  kind: Service
  metadata: {name: not-lb, namespace: a}
  spec: {type: ClusterIP, ports: [{port: 80}]}
- apiVersion: v1
  kind: Node
  metadata: {name: n1}
"""


def test_plan_converges_existing_ingress_first_then_by_age(tmp_path: Path) -> None:
    r = ironlb("plan", write(tmp_path, "cluster.yaml", CLUSTER))
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    svcs = plan["services"]
    assert set(svcs) == {"a/oldest", "b/holder", "a/late", "a/v6", "a/other-class"}
    assert {k: svcs["b/holder"][k] for k in ("ingress", "pool", "events")} == {
        "ingress": ["10.0.0.2"], "pool": "small", "events": []
    }
    assert svcs["a/oldest"]["ingress"] == ["10.0.0.1"]
    assert svcs["a/late"]["ingress"] == []
    assert svcs["a/late"]["pool"] is None
    assert svcs["a/late"]["events"] == [
        {"type": "Warning", "reason": "AllocationFailed", "message": 'Failed to allocate IP for "a/late": no available IPs'}
    ]
    assert svcs["a/v6"]["ingress"] == ["fc00::"]
    assert svcs["a/other-class"]["ingress"] == [] and "ignored" in svcs["a/other-class"]
    assert plan["pools"]["small"] == {"assignedIPv4": 2, "assignedIPv6": 1, "availableIPv4": 0, "availableIPv6": 1}


def test_plan_lb_class_flag(tmp_path: Path) -> None:
    r = ironlb("plan", write(tmp_path, "cluster.yaml", CLUSTER), "--lb-class", "example.com/other")
    plan = json.loads(r.stdout)
    assert plan["services"]["a/other-class"]["ingress"] == ["10.0.0.1"]
    assert "ignored" in plan["services"]["a/oldest"]


def test_plan_invalid_config_exits_1(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: p, namespace: metallb-system}
        spec: {addresses: ["10.0.0.9-10.0.0.1"]}
        """,
    )
    r = ironlb("plan", bad)
    assert r.returncode == 1
    assert "start IP" in r.stderr and "is after the end IP" in r.stderr


@pytest.mark.parametrize("args", [(), ("plan",), ("validate",)])
def test_usage_errors(args: tuple[str, ...]) -> None:
    assert ironlb(*args).returncode == 2


L2_CLUSTER = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p, namespace: metallb-system}
spec: {addresses: ["10.20.30.1/32", "10.20.30.2/32", "10.20.30.3/32"]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: edge, namespace: metallb-system}
spec:
  ipAddressPools: [p]
  interfaces: [eth1]
  nodeSelectors: [{matchLabels: {edge: "true"}}]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: everyone, namespace: metallb-system}
spec:
  ipAddressPools: [p]
  interfaces: [eth0]
---
{apiVersion: v1, kind: Node, metadata: {name: iris1}}
---
{apiVersion: v1, kind: Node, metadata: {name: iris2}}
---
{apiVersion: v1, kind: Node, metadata: {name: edge1, labels: {edge: "true"}}}
---
apiVersion: v1
kind: Service
metadata: {name: cluster, namespace: default, creationTimestamp: "2025-01-01T00:00:01Z"}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: default, creationTimestamp: "2025-01-01T00:00:02Z"}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: no-endpoints, namespace: default, creationTimestamp: "2025-01-01T00:00:03Z"}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: cluster-abc, namespace: default, labels: {kubernetes.io/service-name: cluster}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.5], nodeName: iris1, conditions: {ready: true}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: local-abc, namespace: default, labels: {kubernetes.io/service-name: local}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.6], nodeName: iris2, conditions: {ready: true}}]
"""


def test_plan_layer2_election(tmp_path: Path) -> None:
    from ironlb.layer2.election import sort_candidates

    r = ironlb("plan", write(tmp_path, "l2.yaml", L2_CLUSTER))
    assert r.returncode == 0, r.stderr
    svcs = json.loads(r.stdout)["services"]
    assert svcs["default/cluster"]["ingress"] == ["10.20.30.1"]
    winner = sort_candidates(["iris1", "iris2", "edge1"], "10.20.30.1")[0]
    assert svcs["default/cluster"]["layer2"]["node"] == winner
    expected_ifaces = ["eth0", "eth1"] if winner == "edge1" else ["eth0"]
    assert svcs["default/cluster"]["layer2"]["interfaces"] == expected_ifaces
    assert svcs["default/local"]["layer2"] == {"node": "iris2", "reason": None, "interfaces": ["eth0"]}
    assert svcs["default/no-endpoints"]["layer2"] == {"node": None, "reason": "notOwner", "interfaces": []}


BGP_CLUSTER = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp, namespace: metallb-system}
spec: {addresses: ["10.40.0.0/24", "fc00:40::/120"]}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: aliases, namespace: metallb-system}
spec: {communities: [{name: no-export-ish, value: "65535:65281"}]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: hosts, namespace: metallb-system}
spec:
  ipAddressPools: [bgp]
  communities: ["64512:100", "large:64512:1:2", no-export-ish]
  localPref: 150
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: aggregate, namespace: metallb-system}
spec:
  ipAddressPools: [bgp]
  aggregationLength: 24
  aggregationLengthV6: 120
  peers: [edge-router]
  nodeSelectors: [{matchLabels: {edge: "true"}}]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 10.0.0.1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: edge-router, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64600
  peerAddress: 10.0.0.2
  nodeSelectors: [{matchLabels: {edge: "true"}}]
---
{apiVersion: v1, kind: Node, metadata: {name: edge1, labels: {edge: "true"}}}
---
{apiVersion: v1, kind: Node, metadata: {name: w1}}
---
{apiVersion: v1, kind: Node, metadata: {name: w2, labels: {node.kubernetes.io/exclude-from-external-load-balancers: ""}}}
---
apiVersion: v1
kind: Service
metadata: {name: cluster, namespace: default, creationTimestamp: "2025-01-01T00:00:01Z"}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: default, creationTimestamp: "2025-01-01T00:00:02Z"}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: gone, namespace: default, creationTimestamp: "2025-01-01T00:00:03Z"}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: cluster-abc, namespace: default, labels: {kubernetes.io/service-name: cluster}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.5], nodeName: w1, conditions: {ready: true}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: local-abc, namespace: default, labels: {kubernetes.io/service-name: local}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.6], nodeName: w1, conditions: {ready: true}}]
"""


def test_plan_bgp_routes(tmp_path: Path) -> None:
    r = ironlb("plan", write(tmp_path, "bgp.yaml", BGP_CLUSTER))
    assert r.returncode == 0, r.stderr
    svcs = json.loads(r.stdout)["services"]
    assert svcs["default/cluster"]["ingress"] == ["10.40.0.0"]
    host = {"communities": ["64512:100", "65535:65281", "large:64512:1:2"], "localPref": 150}
    # Cluster: every node selected by an advertisement (w2 is excluded); edge1 also sends the /24 to its edge peer.
    assert svcs["default/cluster"]["bgp"] == [
        {"node": "edge1", "prefix": "10.40.0.0/24", "peers": ["edge-router"], "communities": [], "localPref": None},
        {"node": "edge1", "prefix": "10.40.0.0/32", "peers": ["edge-router", "tor"], **host},
        {"node": "w1", "prefix": "10.40.0.0/32", "peers": ["tor"], **host},
    ]
    # Local: only w1 hosts an endpoint.
    assert svcs["default/local"]["bgp"] == [
        {"node": "w1", "prefix": "10.40.0.1/32", "peers": ["tor"], **host},
    ]
    assert svcs["default/gone"]["bgp"] == []
    # BGP is not Layer 2: without an L2Advertisement nobody answers ARP.
    assert svcs["default/cluster"]["layer2"]["node"] is None


def test_run_refuses_bad_arguments_before_touching_the_network(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    short = write(tmp_path, "short", "abc\n")
    members = "n1=127.0.0.1:17946,n2=127.0.0.2:17946"
    cases = [
        (("--state", state, "--node", "n1", "--members", members, "--secret-file", short), "at least 16 bytes"),
        (("--state", state, "--node", "n9", "--members", members), "is not one of --members"),
        (("--state", tmp_path / "missing", "--node", "n1"), "is not a directory"),
        (("--state", state, "--node", "n1", "--members", "n1"), "NAME=ADDR"),
        (("--state", state, "--node", "n1", "--secret-file", tmp_path / "nope"), "No such file"),
        (("--state", state, "--node", "n1", "--handover-timeout", "-1"), "between 0 and 60"),
        (("--state", state, "--node", "n1", "--handover-timeout", "nan"), "between 0 and 60"),
        (("--state", state, "--node", "n1", "--handover-timeout", "soon"), "not a number of seconds"),
    ]
    for args, message in cases:
        r = ironlb("run", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_run_without_a_secret_refuses_unless_told_it_is_insecure(tmp_path: Path) -> None:
    from ironlb.membership.wire import member_list_key
    from ironlb.standalone.runner import Runner, RunOptions

    state = tmp_path / "state"
    state.mkdir()
    r = ironlb("run", "--state", state, "--node", "n1", "--members", "n1=127.0.0.1:17946,n2=127.0.0.2:17946")
    assert r.returncode == 2, r.stderr
    assert "--secret-file is required with other --members" in r.stderr and "--insecure-no-secret" in r.stderr
    assert "Traceback" not in r.stderr
    members = {"n1": ("127.0.0.1", 17946), "n2": ("127.0.0.2", 17946)}
    with pytest.raises(ValueError, match="needs a secret"):
        Runner(RunOptions(state_dir=state, node="n1", members=members))
    Runner(RunOptions(state_dir=state, node="n1", members=members, insecure_no_secret=True))
    Runner(RunOptions(state_dir=state, node="n1"))  # alone: no membership, no secret needed
    # The insecure key comes from the member list only: the same list gives the same key, another list another.
    assert member_list_key(members) == member_list_key(dict(reversed(members.items())))
    assert member_list_key(members) != member_list_key({**members, "n3": ("127.0.0.3", 17946)})
