import pytest

from ironlb.config import ConfigError, load_texts

from .helpers import config_of, error_of, peer, result_of

BASE = "myASN: 64500\npeerASN: 64501\npeerAddress: 10.0.0.1"


def test_peer_defaults_and_values() -> None:
    cfg = config_of(
        peer(
            "p",
            BASE + "\nsourceAddress: 10.0.0.2\nrouterID: 1.2.3.4\nholdTime: 1m30s\nconnectTime: 5s\n"
            "nodeSelectors: [{matchLabels: {a: b}}]\nenableGracefulRestart: true\ndualStackAddressFamily: true",
        )
    )
    p = cfg.peers[0]
    assert (p.port, p.hold_time, p.keepalive_time, p.connect_time) == (179, 90.0, 30.0, 5.0)
    assert p.source_address == "10.0.0.2" and p.router_id == "1.2.3.4" and p.enable_graceful_restart
    assert p.node_selectors[0].matches({"a": "b"})


def test_timers() -> None:
    assert config_of(peer("p", BASE + "\nkeepaliveTime: 10s")).peers[0].hold_time == 30.0
    assert config_of(peer("p", BASE)).peers[0].hold_time is None
    assert 'invalid hold time "2s": must be 0 or >=3s' in str(error_of(peer("p", BASE + "\nholdTime: 2s")))
    assert config_of(peer("p", BASE + "\nholdTime: 0s\nkeepaliveTime: 0s")).peers[0].hold_time == 0.0
    err = str(error_of(peer("p", BASE + "\nholdTime: 30s\nkeepaliveTime: 40s")))
    assert 'invalid keepaliveTime "40s", must be lower than holdTime "30s"' in err
    assert err.startswith('BGPPeer "p": spec.keepaliveTime: parsing peer p invalid BGPPeer timers: ')


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("peerASN: 1\npeerAddress: 10.0.0.1", "missing local ASN"),
        ("myASN: 1\npeerAddress: 10.0.0.1", "missing peer ASN and dynamicASN"),
        ("myASN: 1\npeerASN: 2\ndynamicASN: external\npeerAddress: 10.0.0.1", "both peer ASN and dynamicASN specified"),
        ("myASN: 1\ndynamicASN: sideways\npeerAddress: 10.0.0.1", "invalid dynamicASN sideways"),
        (
            "myASN: 1\npeerASN: 1\nebgpMultiHop: true\npeerAddress: 10.0.0.1",
            "invalid ebgp-multihop parameter set for an ibgp peer",
        ),
        ("myASN: 1\npeerASN: 2", "peer has no Address or Interface specified"),
        ("myASN: 1\npeerASN: 2\npeerAddress: 10.0.0.300", 'invalid BGPPeer address "10.0.0.300"'),
        (BASE + "\nrouterID: nope", 'invalid router ID "nope"'),
        (BASE + "\nsourceAddress: nope", 'invalid source IP "nope"'),
        (BASE + "\npeerPort: 20000", "spec.peerPort in body should be less than or equal to 16384"),
        (BASE + "\nconnectTime: 0s", "connect time should be between 1 seconds to 65535"),
        (BASE + "\nconnectTime: 1500ms", "connect time should contain a whole number of seconds"),
        (
            BASE + "\npassword: x\npasswordSecret: {name: s}",
            'can not have both password and secret ref set in peer config "metallb-system"/"p"',
        ),
        (
            BASE + "\nnodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]",
            "duplicate definition of nodeSelectors",
        ),
    ],
)
def test_peer_errors(spec: str, message: str) -> None:
    err = str(error_of(peer("p", spec)))
    assert message in err, err
    assert err.startswith('BGPPeer "p": ') and "parsing peer p " in err


def test_dynamic_asn_accepted() -> None:
    assert config_of(peer("p", "myASN: 1\ndynamicASN: internal\npeerAddress: 10.0.0.1")).peers[0].is_ibgp


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("vrf: red", "VRF is not supported by ironlb"),
    ],
)
def test_unsupported_features(spec: str, message: str) -> None:
    assert message in str(error_of(peer("p", BASE + "\n" + spec)))


def test_local_asn_accepted_on_ebgp_peers() -> None:
    assert config_of(peer("p", BASE + "\nlocalASN: 4200000000")).peers[0].local_asn == 4200000000
    dyn = config_of(peer("p", "myASN: 1\ndynamicASN: external\npeerAddress: 10.0.0.1\nlocalASN: 7"))
    assert dyn.peers[0].local_asn == 7


def test_local_asn_equal_to_my_asn_is_a_warning_and_no_override() -> None:
    result = result_of(peer("p", BASE + "\nlocalASN: 64500"))
    assert result.config.peers[0].local_asn == 0
    assert any("spec.localASN 64500: localASN equals myASN, it has no effect" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("myASN: 1\npeerASN: 1\npeerAddress: 10.0.0.1\nlocalASN: 5", "localASN is allowed only for eBGP peers"),
        ("myASN: 1\ndynamicASN: internal\npeerAddress: 10.0.0.1\nlocalASN: 5", "localASN is allowed only for eBGP"),
        (BASE + "\nlocalASN: 64501", "localASN equals peerASN 64501: the session would be iBGP"),
        (BASE + "\nlocalASN: 23456", "invalid localASN 23456: AS_TRANS is reserved"),
    ],
)
def test_local_asn_rules(spec: str, message: str) -> None:
    err = str(error_of(peer("p", spec)))
    assert message in err and 'BGPPeer "p": spec.localASN ' in err, err


def test_interface_peer_accepted_with_metallbs_rules() -> None:
    """Unnumbered peering: ``interface`` instead of ``peerAddress`` (MetalLB's rules: one of the two, not both)."""
    result = result_of(peer("p", "myASN: 1\npeerASN: 2\ninterface: eth0"))
    (p,) = result.config.peers
    assert (p.interface, p.address) == ("eth0", "") and not result.warnings
    assert config_of(peer("p", "myASN: 1\ndynamicASN: external\ninterface: eth0")).peers[0].interface == "eth0"
    both = str(error_of(peer("p", BASE + "\ninterface: eth0")))
    assert "peer has both Address and Interface specified" in both and both.startswith('BGPPeer "p": ')


def test_interface_peer_with_bfd_and_a_warning_for_a_name_linux_cannot_have() -> None:
    bfd = "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: fast, namespace: metallb-system}\n---\n"
    cfg = config_of(bfd + peer("p", "myASN: 1\npeerASN: 2\ninterface: eth0\nbfdProfile: fast"))
    assert (cfg.peers[0].interface, cfg.peers[0].bfd_profile) == ("eth0", "fast")
    result = result_of(peer("p", "myASN: 1\npeerASN: 2\ninterface: a-very-long-interface-name"))
    assert result.config.peers[0].interface == "a-very-long-interface-name"
    assert any("no Linux interface can have this name (longer than 15 bytes)" in w for w in result.warnings)


def test_disable_mp_warns() -> None:
    result = result_of(peer("p", BASE + "\ndisableMP: true"))
    assert any("disable mp is deprecated and has no effect" in w for w in result.warnings)


def test_bgpextras_rejected() -> None:
    err = str(
        error_of(
            """
apiVersion: v1
kind: ConfigMap
metadata: {name: bgpextras, namespace: metallb-system}
data: {extras: "router bgp 1"}
"""
        )
    )
    assert "not supported by ironlb" in err


def _secret(type_: str = "kubernetes.io/basic-auth", data: str = "{password: aHVudGVyMg==}") -> str:
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: s, namespace: metallb-system}}
type: {type_}
data: {data}
"""


def test_password_secret() -> None:
    text = peer("p", BASE + "\npasswordSecret: {name: s, namespace: metallb-system}")
    cfg = config_of(text + _secret())
    assert cfg.peers[0].password == "hunter2" and cfg.peers[0].password_secret is not None
    err = error_of(text)
    assert err.transient
    assert 'secret ref not found for peer config "metallb-system"/"p"' in str(err)
    assert "failed to parse peer p password secret" in str(err)
    assert 'secret type mismatch on "metallb-system"/"s", type "kubernetes.io/basic-auth" is expected' in str(
        error_of(text + _secret(type_="Opaque"))
    )
    assert 'password not specified in the secret "metallb-system"/"s"' in str(error_of(text + _secret(data="{}")))


def test_bfd_profile_reference_and_ranges() -> None:
    err = error_of(peer("p", BASE + "\nbfdProfile: missing"))
    assert "peer p referencing non existing bfd profile missing" in str(err) and err.transient
    bfd = """
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: b}
spec: {receiveInterval: 5}
"""
    err = error_of(bfd)
    assert "invalid value 5, must be in 10-60000 range" in str(err) and "invalid receive interval value" in str(err)
    ok = bfd.replace("receiveInterval: 5", "receiveInterval: 100, echoMode: true")
    # Echo mode is accepted, on its own and on a peer that uses it (IPv4 pools: see test_ipv6_bgp_and_bfd_echo).
    cfg = config_of(ok)
    assert cfg.bfd_profiles[0].receive_interval == 100 and cfg.bfd_profiles[0].echo_mode
    cfg = config_of(ok + peer("p", BASE + "\nbfdProfile: b"))
    assert cfg.peers[0].bfd_profile == "b" and cfg.bfd_profiles[0].echo_interval == 50
    assert "found duplicate bfd profile name b" in str(error_of(ok + ok.replace("100", "200")))


def test_v1beta1_peer_converted() -> None:
    text = peer(
        "old",
        BASE
        + "\nholdTime: 9s\nnodeSelectors: [{matchLabels: {a: b}, matchExpressions: [{key: c, operator: In, values: [d]}]}]",
        version="v1beta1",
    )
    res = load_texts([("t.yaml", text)])
    assert res.bgp_peers[0].api_version == "metallb.io/v1beta2"
    assert res.bgp_peers[0].spec.dump()["nodeSelectors"] == [
        {"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "c", "operator": "In", "values": ["d"]}]}
    ]
    p = config_of(text).peers[0]
    assert p.hold_time == 9.0 and p.node_selectors[0].matches({"a": "b", "c": "d"})


def test_v1beta1_has_no_v1beta2_fields() -> None:
    # Fields unknown to v1beta1 are pruned, as the apiserver would.
    res = load_texts([("t.yaml", peer("old", BASE + "\nvrf: red", version="v1beta1"))])
    assert res.bgp_peers[0].spec.vrf == ""


def test_duration_type_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_texts([("t.yaml", peer("p", BASE + "\nholdTime: 90"))])
    assert "spec.holdTime" in str(info.value) and "duration" in str(info.value)


def test_frr_only_cross_peer_rules_do_not_apply() -> None:
    """ironlb validates as MetalLB's native mode: checkFRRPeersCompatible (one routerID and myASN per node) is
    FRR-only, and ironlb runs each session itself. MetalLB's FRR mode would refuse this with "peer 2.2.2.2 has
    RouterID different from 1.1.1.1, in FRR mode peers selecting the same node must all have the same RouterID"."""
    cfg = config_of(
        peer("a", "myASN: 64500\npeerASN: 64501\npeerAddress: 10.1.0.1\nrouterID: 1.1.1.1")
        + peer("b", "myASN: 64510\npeerASN: 64501\npeerAddress: 10.1.0.2\nrouterID: 2.2.2.2")
    )
    assert sorted(p.my_asn for p in cfg.peers) == [64500, 64510]


def annotated_peer(value: str) -> str:
    """A BGPPeer with ironlb's ``ironlb.io/passive`` annotation set to the YAML scalar ``value``."""
    text = peer("p", BASE)
    return text.replace("metadata: {name: p}", f"metadata: {{name: p, annotations: {{ironlb.io/passive: {value}}}}}")


def test_passive_annotation() -> None:
    assert config_of(annotated_peer('"true"')).peers[0].passive
    assert not config_of(annotated_peer('"false"')).peers[0].passive
    assert not config_of(peer("p", BASE)).peers[0].passive
    for bad in ("yes", "True", "1"):
        err = str(error_of(annotated_peer(bad)))
        assert "annotation ironlb.io/passive: must be" in err and 'BGPPeer "p": metadata.annotations' in err, err


def test_passive_unnumbered_peer_refused() -> None:
    text = peer("p", "myASN: 1\npeerASN: 2\ninterface: eth0")
    text = text.replace("metadata: {name: p}", 'metadata: {name: p, annotations: {ironlb.io/passive: "true"}}')
    err = str(error_of(text))
    assert "a passive unnumbered peer is not supported by ironlb" in err and 'BGPPeer "p": spec.interface' in err, err
