"""Kubernetes label selectors (``metav1.LabelSelector``), evaluated the way the apiserver does."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ironlb.cluster.gofmt import goq

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class SelectorError(ValueError):
    """A selector that Kubernetes itself would refuse to parse (the message is apimachinery's)."""


# apimachinery's util/validation rules for label keys and values, with their messages.
_QNAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = f"({_QNAME})?"
_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = _DNS_LABEL + r"(\." + _DNS_LABEL + ")*"
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character"
)
_DNS_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character"
)


def _regex_error(msg: str, regex: str, *examples: str) -> str:
    shown = "".join(("" if i == 0 else " or ") + f"'{e}', " for i, e in enumerate(examples))
    return f"{msg} (e.g. {shown}regex used for validation is '{regex}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def qualified_name_errors(value: str) -> list[str]:
    """apimachinery's IsQualifiedName: what is wrong with a label key."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a qualified name " + _regex_error(_QNAME_MSG, _QNAME, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errs.append("prefix part " + _max_len(253))
            if not re.fullmatch(_DNS_SUBDOMAIN, prefix):
                errs.append("prefix part " + _regex_error(_DNS_MSG, _DNS_SUBDOMAIN, "example.com"))
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len(63))
    if not re.fullmatch(_QNAME, name):
        errs.append("name part " + _regex_error(_QNAME_MSG, _QNAME, "MyName", "my.name", "123-abc"))
    return errs


def label_value_errors(value: str) -> list[str]:
    """apimachinery's IsValidLabelValue."""
    errs = []
    if len(value) > 63:
        errs.append(_max_len(63))
    if not re.fullmatch(_LABEL_VALUE, value):
        errs.append(_regex_error(_VALUE_MSG, _LABEL_VALUE, "MyValue", "my_value", "12345"))
    return errs


def _go_json(values: Sequence[str]) -> str:
    """encoding/json of a []string, as field.Invalid prints a bad value (nil is null)."""
    if not values:
        return "null"
    text = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def requirement_error(key: str, operator: str, values: Sequence[str]) -> str | None:
    """labels.NewRequirement's aggregated error for one requirement (``operator`` already one of OPERATORS or
    ``Equals`` for matchLabels), or None when it is valid."""
    errs: list[str] = []
    key_errs = qualified_name_errors(key)
    if key_errs:
        errs.append(f"key: Invalid value: {goq(key)}: {'; '.join(key_errs)}")
    if operator in ("In", "NotIn") and not values:
        errs.append("values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty")
    elif operator in ("Exists", "DoesNotExist") and values:
        bad = _go_json(values)
        errs.append(f"values: Invalid value: {bad}: values set must be empty for exists and does not exist")
    for i, value in enumerate(values):
        value_errs = label_value_errors(value)
        if value_errs:
            errs.append(f"values[{i}][{key}]: Invalid value: {goq(value)}: {'; '.join(value_errs)}")
    unique = list(dict.fromkeys(errs))
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


@dataclass(frozen=True, order=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels

    def __str__(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return "!" + self.key
        op = "in" if self.operator == "In" else "notin"
        return f"{self.key} {op} ({','.join(sorted(self.values))})"


@dataclass(frozen=True, order=True)
class LabelSelector:
    """A selector; the empty selector matches everything, as ``metav1.LabelSelectorAsSelector`` does."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)

    def __str__(self) -> str:
        """The selector's canonical string, as ``labels.Selector.String()`` prints it (sorted by key)."""
        parts = [(k, f"{k}={v}") for k, v in self.match_labels]
        parts += [(r.key, str(r)) for r in self.match_expressions]
        return ",".join(p for _, p in sorted(parts, key=lambda kv: kv[0]))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, sort_values: bool = False) -> LabelSelector:
        """Parse ``{matchLabels, matchExpressions}`` as metav1.LabelSelectorAsSelector does: labels by key, then
        the expressions in order, the first invalid one raising SelectorError with apimachinery's text.
        ``sort_values`` sorts each expression's values first, as MetalLB's validateLabelSelectorDuplicate does in
        place before parsing (the index in a message follows)."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise SelectorError(f"label selector must be an object, got {data!r}")
        raw_labels = data.get("matchLabels") or {}
        if not isinstance(raw_labels, Mapping):
            raise SelectorError(f"matchLabels must be an object, got {raw_labels!r}")
        labels = tuple(sorted((str(k), "" if v is None else str(v)) for k, v in raw_labels.items()))
        for key, value in labels:  # a Go map: apimachinery's order is random, ironlb's is by key
            err = requirement_error(key, "Equals", (value,))
            if err:
                raise SelectorError(err)
        reqs: list[Requirement] = []
        for expr in data.get("matchExpressions") or []:
            if not isinstance(expr, Mapping):
                raise SelectorError(f"matchExpressions entry must be an object, got {expr!r}")
            key = str(expr.get("key", ""))
            op = str(expr.get("operator", ""))
            values = [str(v) for v in (expr.get("values") or [])]
            if sort_values:
                values.sort()
            if op not in OPERATORS:
                raise SelectorError(f"{goq(op)} is not a valid label selector operator")
            err = requirement_error(key, op, values)
            if err:
                raise SelectorError(err)
            reqs.append(Requirement(key, op, tuple(values)))
        return cls(labels, tuple(reqs))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [
                {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
                for r in self.match_expressions
            ]
        return out


EVERYTHING = LabelSelector()


def any_matches(selectors: tuple[LabelSelector, ...], labels: Mapping[str, str]) -> bool:
    """OR over selectors, where an empty list means "everything" (MetalLB's convention for nodeSelectors)."""
    return not selectors or any(s.matches(labels) for s in selectors)
