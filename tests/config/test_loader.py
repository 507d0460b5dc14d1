from pathlib import Path

import pytest

from ironlb.config import ConfigError, build_config, load_files, load_objects, load_texts
from ironlb.config.durations import format_duration, parse_go_duration

MIXED = """
apiVersion: v1
kind: List
items:
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata: {name: b, namespace: metallb-system, labels: {x: y}, uid: ignored}
  spec: {addresses: [10.1.0.0/24], unknownField: 1}
  status: {assignedIPv4: 3}
- apiVersion: v1
  kind: Service
  metadata: {name: svc}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [10.0.0.0/24]}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: e}
---
apiVersion: metallb.io/v1beta1
kind: ConfigurationState
metadata: {name: s}
---
"""


def test_mixed_documents_and_lists() -> None:
    res = load_texts([("m.yaml", MIXED)])
    assert [p.name for p in res.pools] == ["b", "a"]
    assert [o["kind"] for o in res.others] == ["Service", "Node", "EndpointSlice"]
    assert len(res.services) == 1 and len(res.nodes) == 1 and len(res.endpoint_slices) == 1
    cfg = build_config(res)
    assert [p.name for p in cfg.pools] == ["a", "b"]  # sorted by name


def test_errors_name_file_and_document(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: 3}\n")
    with pytest.raises(ConfigError) as info:
        load_files([f])
    assert f'{f}: document 1 (IPAddressPool "p"): IPAddressPool "p": spec.addresses' in str(info.value)
    f.write_text("a: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_files([f])
    with pytest.raises(ConfigError, match="cannot read"):
        load_files([tmp_path / "missing.yaml"])


def test_unknown_version_rejected() -> None:
    with pytest.raises(ConfigError, match="unsupported apiVersion/kind metallb.io/v1alpha1/IPAddressPool"):
        load_texts([("x", "apiVersion: metallb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: p}\n")])


def test_wrong_namespace_rejected() -> None:
    res = load_objects(
        [
            {
                "apiVersion": "metallb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": {"name": "p", "namespace": "x"},
                "spec": {"addresses": ["10.0.0.0/24"]},
            }
        ]
    )
    with pytest.raises(ConfigError, match="resource must be created in metallb-system namespace"):
        build_config(res)
    assert build_config(res, namespace="x").pools[0].name == "p"


def test_legacy_configmap_loaded_with_crds() -> None:
    text = """
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data:
  config: |
    address-pools:
    - {name: old, protocol: layer2, addresses: ['10.9.0.0/24']}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: new}
spec: {addresses: [10.8.0.0/24]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: other-app}
data: {config: "just: text"}
"""
    res = load_texts([("t", text)])
    assert len(res.legacy_configmaps) == 1 and len(res.config_maps) == 1
    cfg = build_config(res)
    assert [p.name for p in cfg.pools] == ["new", "old"]
    assert [a.name for a in cfg.pools_by_name["old"].l2_advertisements] == ["l2advertisement1"]


def test_determinism_and_order_independence() -> None:
    docs = MIXED.split("---")
    a = build_config(load_texts([("m", MIXED)]))
    b = build_config(load_texts([("m", "---".join(reversed(docs)))]))
    assert a == b and a == build_config(load_texts([("m", MIXED)]))


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("90s", 90 * 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("300ms", 3 * 10**8),
        ("0", 0),
        ("-2s", -2 * 10**9),
    ],
)
def test_go_durations(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


def test_go_duration_format() -> None:
    assert [format_duration(n) for n in (0, 90 * 10**9, 120 * 10**9, 1500 * 10**6, 300 * 10**6)] == [
        "0s",
        "1m30s",
        "2m0s",
        "1.5s",
        "300ms",
    ]
    for bad in ("", "90", "1x", "abc"):
        with pytest.raises(ValueError):
            parse_go_duration(bad)


def test_secret_string_data() -> None:
    res = load_texts([("s", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: pw}\n")])
    assert res.secrets[0].data["password"] == "pw" and res.secrets[0].type == "Opaque"
