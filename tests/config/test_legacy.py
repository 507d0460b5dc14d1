from pathlib import Path

import pytest

from ironlb.config import ConfigError, build, convert_legacy, load_texts, validate_files, yamlio
from ironlb.config.legacy import convert, parse_legacy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

FULL = """
peers:
- peer-address: 10.0.0.1
  peer-asn: 64512
  my-asn: 64512
  peer-port: 179
  hold-time: 120s
  keepalive-time: 30s
  bfd-profile: Fast_BFD
  node-selectors:
  - match-labels: {kubernetes.io/hostname: prod-01}
    match-expressions:
    - {key: kubernetes.io/arch, operator: In, values: [amd64, arm]}
- peer-address: 10.0.0.2
  peer-asn: 64513
  my-asn: 64512
address-pools:
- name: 01-My_Pool
  protocol: bgp
  addresses: [192.168.10.0/24]
  auto-assign: false
  bgp-advertisements:
  - {aggregation-length: 32, localpref: 100, communities: [64512:1, no-export]}
  - {aggregation-length: 24}
- name: plain-bgp
  protocol: bgp
  addresses: [192.168.20.0/24]
- name: l2
  protocol: layer2
  addresses: [192.168.30.0/24]
  avoid-buggy-ips: true
bgp-communities: {no-export: 65535:65281, a-first: 1:1}
bfd-profiles:
- {name: Fast_BFD, receive-interval: 280, echo-mode: true}
"""


def _by_kind(docs: list[dict]) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    out: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def test_seed_example_converts_to_pool_and_l2advertisement() -> None:
    out = convert_legacy(EXAMPLES / "metallb-config.yaml")
    docs = [d for d in yamlio.load_all(out) if d]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("IPAddressPool", "default"),
        ("L2Advertisement", "l2advertisement1"),
    ]
    assert docs[0]["apiVersion"] == "metallb.io/v1beta1"
    assert docs[0]["metadata"] == {"name": "default", "namespace": "metallb-system"}
    assert docs[0]["spec"] == {"addresses": ["192.168.1.240-192.168.1.250"]}
    assert docs[1]["spec"] == {"ipAddressPools": ["default"]}
    assert "---" in out


def test_seed_example_round_trip_equals_crds() -> None:
    legacy_cfg, _ = validate_files([EXAMPLES / "metallb-config.yaml"])
    crd_cfg, summary = validate_files([EXAMPLES / "crds.yaml"])
    assert legacy_cfg == crd_cfg
    assert "pool default" in summary
    # The YAML that `ironlb convert` prints parses back to the same Config.
    again = build(load_texts([("converted", convert_legacy(EXAMPLES / "metallb-config.yaml"))])).config
    assert again == crd_cfg


def test_full_conversion_rules() -> None:
    conv = convert(parse_legacy(FULL), "lb")
    kinds = _by_kind(conv.documents)
    assert [d["kind"] for d in conv.documents][:2] == ["BGPPeer", "BGPPeer"]
    p1, p2 = kinds["BGPPeer"]
    assert p1["apiVersion"] == "metallb.io/v1beta2" and p1["metadata"] == {"name": "peer1", "namespace": "lb"}
    assert p1["spec"]["holdTime"] == "2m0s" and p1["spec"]["keepaliveTime"] == "30s"
    assert p1["spec"]["bfdProfile"] == "fast-bfd"
    assert p2["metadata"]["name"] == "peer2" and p2["spec"]["holdTime"] == "1m30s" and "keepaliveTime" not in p2["spec"]
    assert "peerPort" not in p2["spec"]
    pools = kinds["IPAddressPool"]
    assert [p["metadata"]["name"] for p in pools] == ["my-pool", "plain-bgp", "l2"]
    assert pools[0]["spec"]["autoAssign"] is False and pools[2]["spec"]["avoidBuggyIPs"] is True
    ads = kinds["BGPAdvertisement"]
    assert [(a["metadata"]["name"], a["spec"]["ipAddressPools"]) for a in ads] == [
        ("bgpadvertisement1", ["my-pool"]),
        ("bgpadvertisement2", ["my-pool"]),
        ("bgpadvertisement3", ["plain-bgp"]),
    ]
    assert ads[0]["spec"]["communities"] == ["64512:1", "no-export"] and ads[0]["spec"]["localPref"] == 100
    assert ads[2]["spec"] == {"ipAddressPools": ["plain-bgp"]}
    assert [a["metadata"]["name"] for a in kinds["L2Advertisement"]] == ["l2advertisement1"]
    (community,) = kinds["Community"]
    assert community["metadata"]["name"] == "communities"
    assert [c["name"] for c in community["spec"]["communities"]] == ["a-first", "no-export"]
    (bfd,) = kinds["BFDProfile"]
    assert bfd["metadata"]["name"] == "fast-bfd"
    assert bfd["spec"] == {"receiveInterval": 280, "echoMode": True, "passiveMode": False}
    assert any("Changing IpAddressPool name from: 01-My_Pool to: my-pool" in n for n in conv.notes)


def test_hold_time_rules() -> None:
    with pytest.raises(ConfigError, match='invalid hold time "2s": must be 0 or >=3s'):
        convert(parse_legacy("peers: [{my-asn: 1, peer-asn: 2, peer-address: 1.1.1.1, hold-time: 2s}]"))
    conv = convert(parse_legacy("peers: [{my-asn: 1, peer-asn: 2, peer-address: 1.1.1.1, hold-time: 3500ms}]"))
    assert conv.documents[0]["spec"]["holdTime"] == "3s"


def test_namespace_from_configmap(tmp_path: Path) -> None:
    src = tmp_path / "cm.yaml"
    src.write_text((EXAMPLES / "metallb-config.yaml").read_text().replace("metallb-system", "lb"))
    out = convert_legacy(src, "ignored")
    assert "namespace: lb" in out and "ignored" not in out


def test_data_only_input(tmp_path: Path) -> None:
    src = tmp_path / "data.yaml"
    src.write_text("address-pools: [{name: x, protocol: layer2, addresses: [10.0.0.0/24]}]\n")
    assert "l2advertisement1" in convert_legacy(src)


def test_legacy_invalid_config_rejected(tmp_path: Path) -> None:
    src = tmp_path / "data.yaml"
    src.write_text("address-pools: [{name: x, protocol: layer2, addresses: [10.0.0.1]}]\n")
    with pytest.raises(ConfigError, match='invalid CIDR "10.0.0.1"'):
        convert_legacy(src)
    src.write_text("peers: [{my-asn: '1'}]\n")
    with pytest.raises(ConfigError, match="my-asn"):
        convert_legacy(src)


def test_conversion_equals_configmaptocrs_output() -> None:
    """The whole output of MetalLB's configmaptocrs for this input (run on it), document for document; MetalLB
    also writes ``passwordSecret: {}`` on every peer (a Go struct without omitempty), which means nothing set."""
    data = """
bgp-communities:
  no-advertise: 65535:65282
peers:
- {peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500, hold-time: 9s}
address-pools:
- name: My_Pool.1
  protocol: bgp
  auto-assign: false
  avoid-buggy-ips: true
  addresses: [10.1.0.0/24, 10.2.0.0-10.2.0.15]
  bgp-advertisements:
  - {aggregation-length: 28, localpref: 100, communities: [no-advertise, "1234:5"]}
  - {}
- {name: l2pool, protocol: layer2, addresses: ["fd00::/120"]}
"""
    ns = "other-ns"

    def doc(version: str, kind: str, name: str, spec: dict[str, object]) -> dict[str, object]:
        return {"apiVersion": f"metallb.io/{version}", "kind": kind, "metadata": {"name": name, "namespace": ns},
                "spec": spec}

    expected = [
        doc("v1beta2", "BGPPeer", "peer1", {"holdTime": "9s", "myASN": 64500, "peerASN": 64501,
                                             "peerAddress": "10.0.0.1"}),
        doc("v1beta1", "IPAddressPool", "my-pool.1", {"addresses": ["10.1.0.0/24", "10.2.0.0-10.2.0.15"],
                                                      "autoAssign": False, "avoidBuggyIPs": True}),
        doc("v1beta1", "IPAddressPool", "l2pool", {"addresses": ["fd00::/120"]}),
        doc("v1beta1", "BGPAdvertisement", "bgpadvertisement1", {
            "aggregationLength": 28, "communities": ["no-advertise", "1234:5"], "ipAddressPools": ["my-pool.1"],
            "localPref": 100}),
        doc("v1beta1", "BGPAdvertisement", "bgpadvertisement2", {"ipAddressPools": ["my-pool.1"]}),
        doc("v1beta1", "L2Advertisement", "l2advertisement1", {"ipAddressPools": ["l2pool"]}),
        doc("v1beta1", "Community", "communities", {"communities": [{"name": "no-advertise", "value": "65535:65282"}]}),
    ]
    got = convert(parse_legacy(data), ns).documents
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
