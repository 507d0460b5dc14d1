"""Label selectors in the configuration: apimachinery's validation (metav1.LabelSelectorAsSelector, with its own
text) and MetalLB's lines around it, for every place a selector appears; duplicates in Go's ``%q`` struct text.

Each expected text was produced by MetalLB's internal/config (For with native validation) on the same input;
ironlb writes MetalLB's errors.Join on one line with "; " and prefixes the resource and field.
"""

from __future__ import annotations

import pytest

from .helpers import error_of, pool

REGEX_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation "
    "is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
REGEX_NAME = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def ad(kind: str, field: str, selector: str) -> str:
    return f"""
---
apiVersion: metallb.io/v1beta1
kind: {kind}
metadata: {{name: ad, namespace: metallb-system}}
spec:
  {field}: [{selector}]
"""


def allocation(field: str, selector: str) -> str:
    return pool("p", "10.0.0.0/24", extra=f"serviceAllocation:\n    {field}: [{selector}]")


@pytest.mark.parametrize(("text", "message"), [
    # addressPoolServiceAllocationsFromCR: the service selector's value (%v), then MetalLB's second line.
    (allocation("serviceSelectors", '{matchLabels: {app: "has space"}}'),
     f'parsing address pool p: values[0][app]: Invalid value: "has space": {REGEX_VALUE}; '
     "invalid service label selector {map[app:has space] []} in ip pool p"),
    (allocation("serviceSelectors", "{matchExpressions: [{key: k, operator: In}]}"),
     "parsing address pool p: values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty; "
     "invalid service label selector {map[] [{k In []}]} in ip pool p"),
    # ... the namespace selector's pointer (the generated String()), values sorted by validateLabelSelectorDuplicate.
    (allocation("namespaceSelectors", '{matchExpressions: [{key: k, operator: In, values: ["z z", a]}]}'),
     f'parsing address pool p: values[1][k]: Invalid value: "z z": {REGEX_VALUE}; invalid namespace label selector '
     "&LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{"
     "LabelSelectorRequirement{Key:k,Operator:In,Values:[a z z],},},} in ip pool p"),
    (allocation("serviceSelectors", "{matchExpressions: [{key: k, operator: Foo}]}"),
     '"Foo" is not a valid label selector operator; invalid service label selector {map[] [{k Foo []}]} in ip pool p'),
    # Several problems in one requirement: an aggregate in brackets.
    (allocation("serviceSelectors", '{matchLabels: {"a/b/c": "x y"}}'),
     '[key: Invalid value: "a/b/c": a qualified name ' + REGEX_NAME + " with an optional DNS subdomain prefix and "
     f"'/' (e.g. 'example.com/MyName'), values[0][a/b/c]: Invalid value: \"x y\": {REGEX_VALUE}]; "
     "invalid service label selector {map[a/b/c:x y] []} in ip pool p"),
    (allocation("serviceSelectors", '{matchLabels: {"Ex.com/": ""}}'),
     'key: Invalid value: "Ex.com/": prefix part a lowercase RFC 1123 subdomain must consist of lower case '
     "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
     "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'"
     f"); name part must be non-empty; name part {REGEX_NAME}"),
    # l2AdvertisementFromCR: filterWithLabelSelector's line, then "failed to parse node selector for".
    (pool("p", "10.0.0.0/24") + ad("L2Advertisement", "nodeSelectors", "{matchExpressions: [{key: k, operator: "
                                   "Exists, values: [b, a]}]}"),
     'values: Invalid value: ["a","b"]: values set must be empty for exists and does not exist; '
     "invalid label selector {map[] [{k Exists [a b]}]}; failed to parse node selector for ad"),
    # parseSelectors wraps the error on the same line (%w).
    (pool("p", "10.0.0.0/24") + ad("BGPAdvertisement", "serviceSelectors", '{matchLabels: {app: "has space"}}'),
     'invalid service selector {map[app:has space] []}: values[0][app]: Invalid value: "has space": '
     f"{REGEX_VALUE}; failed to parse service selector for ad"),
    # Native mode's poolSelectorsForBGP, before anything sorted the values.
    (pool("p", "10.0.0.0/24") + ad("BGPAdvertisement", "ipAddressPoolSelectors",
                                   "{matchExpressions: [{key: k, operator: Exists, values: [b, a]}]}"),
     "invalid label selector {map[] [{k Exists [b a]}]}"),
    # preferredNodeScores: no sorting there.
    (pool("p", "10.0.0.0/24") + ad("L2Advertisement", "preferredNodeSelectors",
                                   "{weight: 10, preference: {matchExpressions: [{key: k, operator: Exists, "
                                   "values: [b, a]}]}}"),
     'values: Invalid value: ["b","a"]: values set must be empty for exists and does not exist; invalid preferred '
     "node selector {map[] [{k Exists [b a]}]}; failed to parse preferred node selectors for ad"),
])
def test_invalid_selector_texts(text: str, message: str) -> None:
    assert message in str(error_of(text))


def test_peer_node_selector() -> None:
    """peerFromCR: apimachinery's error, then "failed to convert peer ... node selector"."""
    peer = """
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: r, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 10.1.1.1, nodeSelectors: [{matchLabels: {app: "has space"}}]}
"""
    assert (f'values[0][app]: Invalid value: "has space": {REGEX_VALUE}; failed to convert peer r node selector'
            in str(error_of(pool("p", "10.0.0.0/24") + peer)))


@pytest.mark.parametrize(("text", "message"), [
    # validateLabelSelectorDuplicate prints the duplicate with %q: Go's struct text, maps sorted by key.
    (allocation("serviceSelectors", "{matchLabels: {app: web}}, {matchLabels: {app: web}}"),
     'duplicate definition of serviceSelectors {map["app":"web"] []}'),
    (allocation("namespaceSelectors", '{matchLabels: {app: web, b: "x y"}, matchExpressions: [{key: k, operator: '
                                      'In, values: [b, a]}]}, {matchExpressions: [{key: k, operator: In, values: '
                                      '[a, b]}], matchLabels: {b: "x y", app: web}}'),
     'duplicate definition of namespaceSelectors {map["app":"web" "b":"x y"] [{"k" "In" ["a" "b"]}]}'),
    # validateLabelSelectorMatchExpressions
    (pool("p", "10.0.0.0/24") + ad("L2Advertisement", "nodeSelectors", "{matchExpressions: [{key: k, operator: "
                                   "Exists}, {key: k, operator: Exists}]}"),
     'duplicate definition of match expressions {"k" "Exists" []}'),
])
def test_duplicate_selector_texts(text: str, message: str) -> None:
    assert message in str(error_of(text))
