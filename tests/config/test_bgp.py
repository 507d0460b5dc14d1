import pytest

from ironlb.config.types import Community

from .helpers import bgp_ad, config_of, error_of, peer, pool, result_of

PEER = "myASN: 64500\npeerASN: 64501\npeerAddress: 10.0.0.1"


def test_aggregation_length_message_as_metallb_e2e() -> None:
    err = error_of(pool("p", "1.1.1.0/28") + bgp_ad("a", "aggregationLength: 26"))
    assert (
        "invalid aggregation length 26: prefix 28 in this pool is more specific than the aggregation length "
        "for addresses 1.1.1.0/28"
    ) in str(err)


def test_aggregation_length_v6_prints_v4_value_and_ranges_use_least_specific() -> None:
    err = error_of(pool("p", "fc00::/120") + bgp_ad("a", "aggregationLengthV6: 112"))
    assert "invalid aggregation length 32: prefix 120" in str(err)
    # A range summarised into /29 + /31 + /32: the least specific (/29) is what counts.
    cfg = config_of(pool("p", "192.168.1.240-192.168.1.250") + bgp_ad("a", "aggregationLength: 29"))
    assert cfg.pools[0].bgp_advertisements[0].aggregation_length == 29
    assert "invalid aggregation length 28: prefix 29" in str(
        error_of(pool("p", "192.168.1.240-192.168.1.250") + bgp_ad("a", "aggregationLength: 28"))
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("aggregationLength: 33", "invalid aggregation length 33 for IPv4"),
        ("aggregationLengthV6: 129", "invalid aggregation length 129 for IPv6"),
        (
            "aggregationLength: 24\nserviceSelectors: [{matchLabels: {a: b}}]",
            "serviceSelectors and aggregationLength are mutually exclusive, both cannot be set in a",
        ),
        (
            "aggregationLengthV6: 64\nserviceSelectors: [{matchLabels: {a: b}}]",
            "serviceSelectors and aggregationLengthV6 are mutually exclusive, both cannot be set in a",
        ),
        ("peers: [x, x]", 'duplicate definition of peers "x"'),
        ("communities: ['1:1', '1:1']", 'duplicate definition of community "1:1"'),
        (
            "communities: ['70000:1']",
            'invalid community value: invalid section "70000" of community "70000:1", err: '
            '"strconv.ParseUint: parsing \\"70000\\": value out of range"',
        ),
        ("communities: ['nope']", 'invalid community format: nope; invalid community "nope" in BGP advertisement'),
        (
            "communities: ['big:1:2:3']",
            'expected community to be of format large:<uint32>:<uint32>:<uint32> but got "big:1:2:3" instead',
        ),
    ],
)
def test_bgp_advertisement_errors(spec: str, message: str) -> None:
    err = error_of(pool("p", "10.0.0.0/24") + bgp_ad("a", spec))
    assert message in str(err), str(err)
    assert str(err).startswith('BGPAdvertisement "a": ')


def test_unknown_alias_is_transient() -> None:
    err = error_of(pool("p", "10.0.0.0/24") + bgp_ad("a", "communities: [no-export]"))
    assert err.transient


def test_communities_standard_large_and_aliases() -> None:
    text = (
        pool("p", "10.0.0.0/24", "fc00::/120")
        + """
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c}
spec:
  communities:
  - {name: no-export, value: '65535:65281'}
  - {name: big, value: 'large:1:2:3'}
"""
        + bgp_ad("a", "communities: [no-export, big, '64512:1', 'large:4:5:6']")
    )
    cfg = config_of(text)
    ad = cfg.pools[0].bgp_advertisements[0]
    assert ad.communities == frozenset(
        {Community((65535 << 16 | 65281,)), Community((1, 2, 3)), Community((64512 << 16 | 1,)), Community((4, 5, 6))}
    )
    assert dict(cfg.communities)["no-export"] == Community((65535 << 16 | 65281,))


def test_community_cr_errors() -> None:
    dup = """
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c1}
spec: {communities: [{name: x, value: '1:1'}]}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c2}
spec: {communities: [{name: x, value: '1:2'}, {name: y, value: 'zz:1'}]}
"""
    err = str(error_of(dup))
    assert 'Community "c2": spec.communities[0].name: duplicate definition of community "x"' in err
    assert 'parsing community "y": invalid community value: invalid section "zz"' in err


NODE_N1 = """
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {zone: a, rack: r1}}
"""


def test_local_pref_conflict() -> None:
    base = pool("p", "10.0.0.0/24") + NODE_N1
    err = error_of(base + bgp_ad("a", "localPref: 100") + bgp_ad("b", "localPref: 200"))
    assert (
        "invalid local preference 200: local preferernce 100 was already set for the same type of BGP update. "
        "Check existing BGP advertisements with common pools and aggregation lengths"
    ) in str(err)
    # Different aggregation length, disjoint peers, disjoint nodes, or serviceSelectors: no conflict.
    config_of(base + bgp_ad("a", "localPref: 100") + bgp_ad("b", "localPref: 200\naggregationLength: 24"))
    config_of(base + bgp_ad("a", "localPref: 100\npeers: [x]") + bgp_ad("b", "localPref: 200\npeers: [y]"))
    config_of(
        base
        + bgp_ad("a", "localPref: 100\nnodeSelectors: [{matchLabels: {zone: a}}]")
        + bgp_ad("b", "localPref: 200\nnodeSelectors: [{matchLabels: {zone: b}}]")
    )
    config_of(base + bgp_ad("a", "localPref: 100") + bgp_ad("b", "localPref: 200\nserviceSelectors: [{}]"))


def test_local_pref_conflict_needs_a_common_node() -> None:
    """MetalLB's BGPAdvertisementsHaveCompatibleLocalPref compares the advertisements' Nodes sets, computed from
    the Nodes in the cluster: with no Node at all, or none selected by both, the two localPrefs never meet."""
    ads = bgp_ad("a", "localPref: 100\nnodeSelectors: [{matchLabels: {zone: a}}]") + bgp_ad("b", "localPref: 200")
    config_of(pool("p", "10.0.0.0/24") + ads)  # no Node: valid
    other = """
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {zone: b}}
"""
    config_of(pool("p", "10.0.0.0/24") + ads + other)  # n2 is not in zone a: valid
    assert "invalid local preference 200" in str(error_of(pool("p", "10.0.0.0/24") + ads + other + NODE_N1))


def test_local_pref_uses_nodes_when_known() -> None:
    nodes = """
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {zone: a, rack: r1}}
"""
    ads = bgp_ad("a", "localPref: 100\nnodeSelectors: [{matchLabels: {zone: a}}]") + bgp_ad(
        "b", "localPref: 200\nnodeSelectors: [{matchLabels: {rack: r1}}]"
    )
    assert "invalid local preference" in str(error_of(pool("p", "10.0.0.0/24") + ads + nodes))


def test_equal_bgp_advertisements() -> None:
    err = error_of(pool("p", "10.0.0.0/24") + bgp_ad("a") + bgp_ad("a"))
    assert "duplicate definition of bgpadvertisements. advertisement 1 and 2 are equal" in str(err)


def test_bgp_ad_defaults_and_pool_selection() -> None:
    cfg = config_of(pool("p", "10.0.0.0/24") + pool("q", "10.1.0.0/24") + bgp_ad("a", "ipAddressPools: [q]"))
    assert cfg.pools_by_name["p"].bgp_advertisements == ()
    ad = cfg.pools_by_name["q"].bgp_advertisements[0]
    assert (ad.aggregation_length, ad.aggregation_length_v6, ad.local_pref) == (32, 128, 0)


def test_ipv6_bgp_and_bfd_echo() -> None:
    bfd = """
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: echo}
spec: {echoMode: true}
"""
    text = pool("p", "fc00::/120") + bgp_ad("a") + bfd + peer("peer1", PEER + "\nbfdProfile: echo")
    err = error_of(text)
    assert (
        "pool p has bgpadvertisement a which references peer peer1 which has bfd echo enabled, which is not possible"
        in str(err)
    )
    # IPv6 over BGP is accepted by ironlb (MetalLB native mode would refuse it).
    cfg = config_of(pool("p", "fc00::/120") + bgp_ad("a") + peer("peer1", PEER))
    assert cfg.pools[0].bgp_advertisements[0].name == "a"


def test_warning_for_unknown_pool_name() -> None:
    result = result_of(pool("p", "10.0.0.0/24") + bgp_ad("a", "ipAddressPools: [nope]"))
    assert result.config.pools[0].bgp_advertisements == ()
    assert any("nope" in w for w in result.warnings)
