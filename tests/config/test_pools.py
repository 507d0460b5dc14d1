import ipaddress

import pytest

from ironlb.cluster.labels import EVERYTHING, LabelSelector

from .helpers import config_of, error_of, l2_ad, pool


def test_cidr_with_host_bits_and_range_summary() -> None:
    cfg = config_of(pool("p", "1.2.3.4/24", "10.0.0.1 - 10.0.0.6", "fc00::/126"))
    assert [str(c) for c in cfg.pools[0].cidrs] == [
        "1.2.3.0/24",
        "10.0.0.1/32",
        "10.0.0.2/31",
        "10.0.0.4/31",
        "10.0.0.6/32",
        "fc00::/126",
    ]
    p = cfg.pools[0]
    assert p.auto_assign is True and p.avoid_buggy_ips is False and p.service_allocation is None


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("1.2.3.4", 'parsing address pool p: invalid CIDR "1.2.3.4" in pool "p": invalid CIDR "1.2.3.4"'),
        ("1.2.3.0/33", 'invalid CIDR "1.2.3.0/33"'),
        ("foo-1.1.1.1", 'invalid IP range "foo-1.1.1.1": invalid start IP "foo"'),
        ("1.1.1.1-bar", 'invalid IP range "1.1.1.1-bar": invalid end IP "bar"'),
        ("1.1.1.9-1.1.1.1", 'invalid IP range "1.1.1.9-1.1.1.1": start IP "1.1.1.9" is after the end IP "1.1.1.1"'),
    ],
)
def test_bad_addresses(address: str, message: str) -> None:
    err = error_of(pool("p", address))
    assert message in str(err)
    assert str(err).startswith('IPAddressPool "p": spec.addresses[0]: ')


def test_no_prefixes_and_duplicates_and_overlaps() -> None:
    assert "parsing address pool p: pool has no prefixes defined" in str(error_of(pool("p")))
    err = error_of(pool("a", "10.0.0.0/24") + pool("a", "10.1.0.0/24"))
    assert 'duplicate definition of pool "a"' in str(err)
    err = error_of(pool("a", "10.0.0.0/24") + pool("b", "10.0.0.128/25"))
    assert 'CIDR "10.0.0.128/25" in pool "b" overlaps with already defined CIDR "10.0.0.0/24"' in str(err)
    err = error_of(pool("a", "10.0.0.0/24", "10.0.0.5-10.0.0.6"))
    assert 'CIDR "10.0.0.5/32" in pool "a" overlaps with already defined CIDR "10.0.0.0/24"' in str(err)


def test_all_errors_reported_and_good_pools_unaffected() -> None:
    err = error_of(pool("a", "x") + pool("b", "10.0.0.0/24") + pool("c", "y"))
    assert len(err.messages) == 2
    assert err.messages[0].startswith('IPAddressPool "a"') and err.messages[1].startswith('IPAddressPool "c"')


def test_service_allocation() -> None:
    text = (
        pool("only-priority", "10.0.0.0/24", extra="serviceAllocation: {priority: 5}")
        + pool(
            "pinned",
            "10.1.0.0/24",
            extra="""
            serviceAllocation:
              priority: 1
              namespaces: [ns-a]
              namespaceSelectors: [{matchLabels: {team: blue}}]
              serviceSelectors: [{matchExpressions: [{key: app, operator: In, values: [web]}]}]
            """,
        )
        + """
---
apiVersion: v1
kind: Namespace
metadata: {name: ns-b, labels: {team: blue}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns-c, labels: {team: red}}
"""
    )
    cfg = config_of(text)
    only = cfg.pools_by_name["only-priority"].service_allocation
    assert only is not None and only.priority == 5 and only.service_selectors == (EVERYTHING,)
    pinned = cfg.pools_by_name["pinned"].service_allocation
    assert pinned is not None and pinned.namespaces == frozenset({"ns-a", "ns-b"})
    assert pinned.service_selectors[0].matches({"app": "web"})
    assert [p.name for p in cfg.pools_for_namespace("ns-b")] == ["pinned"]
    assert [p.name for p in cfg.pools_by_service_selector] == ["only-priority", "pinned"]


@pytest.mark.parametrize(
    ("allocation", "message"),
    [
        ("{namespaces: [a, a]}", "duplicate definition in namespaces field"),
        (
            "{namespaceSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}",
            "duplicate definition of namespaceSelectors",
        ),
        (
            "{serviceSelectors: [{matchExpressions: [{key: a, operator: In, values: [x, y]}]},"
            " {matchExpressions: [{key: a, operator: In, values: [y, x]}]}]}",
            "duplicate definition of serviceSelectors",
        ),
        (
            "{serviceSelectors: [{matchExpressions: [{key: a, operator: In, values: [x, x]}]}]}",
            'duplicate definition of match expression value in label selector "x"',
        ),
    ],
)
def test_service_allocation_errors(allocation: str, message: str) -> None:
    err = error_of(pool("p", "10.0.0.0/24", extra=f"serviceAllocation: {allocation}"))
    assert message in str(err)
    assert "parsing address pool p: " in str(err)


def test_avoid_buggy_and_auto_assign() -> None:
    cfg = config_of(pool("p", "10.0.0.0/24", extra="autoAssign: false\navoidBuggyIPs: true"))
    p = cfg.pools[0]
    assert not p.auto_assign and p.avoid_buggy_ips
    assert not p.contains(ipaddress.IPv4Address("10.0.0.255"))
    assert p.contains(ipaddress.IPv4Address("10.0.0.1"))


def test_type_errors_name_file_resource_field_and_value() -> None:
    from ironlb.config import ConfigError, load_texts

    with pytest.raises(ConfigError) as info:
        load_texts([("f.yaml", pool("p", "10.0.0.0/24", extra="autoAssign: 'yes'"))])
    msg = str(info.value)
    assert 'f.yaml: document 1 (IPAddressPool "p")' in msg
    assert "spec.autoAssign" in msg and "'yes'" in msg


def test_l2_advertisements_attach() -> None:
    text = (
        pool("a", "10.0.0.0/24", extra="")
        + pool("b", "10.1.0.0/24")
        + """
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: c, labels: {zone: east}}
spec: {addresses: [10.2.0.0/24]}
"""
        + l2_ad("all")
        + l2_ad("named", "ipAddressPools: [a, missing]\ninterfaces: [eth0]")
        + l2_ad(
            "bylabel",
            "ipAddressPoolSelectors: [{matchLabels: {zone: east}}]\nipAddressPools: [c]\n"
            "preferredNodeSelectors: [{weight: 10, preference: {matchLabels: {fast: 'true'}}}]",
        )
        + l2_ad("dup-of-all", "nodeSelectors: []")
    )
    from .helpers import result_of

    result = result_of(text)
    cfg = result.config
    assert [a.name for a in cfg.pools_by_name["a"].l2_advertisements] == ["all", "named"]
    assert [a.name for a in cfg.pools_by_name["b"].l2_advertisements] == ["all"]
    c_ads = cfg.pools_by_name["c"].l2_advertisements
    assert [a.name for a in c_ads] == ["all", "bylabel"]  # attached once despite name + selector
    assert c_ads[1].preferred_nodes[0].weight == 10
    assert cfg.pools_by_name["a"].l2_advertisements[1].interfaces == ("eth0",)
    assert any('no valid IPAddressPool named "missing"' in w for w in result.warnings)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ipAddressPools: [a, a]", 'duplicate definition of ipAddressPools "a"'),
        ("nodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]", "duplicate definition of nodeSelectors"),
        (
            "serviceSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]",
            "duplicate definition of serviceSelectors",
        ),
        (
            "ipAddressPoolSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]",
            "duplicate definition of ipAddressPoolSelectors",
        ),
        (
            "nodeSelectors: [{matchExpressions: [{key: a, operator: Bogus, values: [x]}]}]",
            "failed to parse node selector for x",
        ),
        ("preferredNodeSelectors: [{weight: 0, preference: {}}]", "should be greater than or equal to 1"),
    ],
)
def test_l2_errors(spec: str, message: str) -> None:
    err = error_of(pool("a", "10.0.0.0/24") + l2_ad("x", spec))
    assert message in str(err)
    assert str(err).startswith('L2Advertisement "x": ')


def test_label_selector_from_model_roundtrip() -> None:
    assert LabelSelector.from_dict({"matchLabels": {"a": "b"}}).matches({"a": "b"})
