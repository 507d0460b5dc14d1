"""Kubernetes label selectors (``metav1.LabelSelector``), evaluated the way the apiserver does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class SelectorError(ValueError):
    """A selector that Kubernetes itself would refuse to parse."""


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
    def from_dict(cls, data: Mapping[str, Any] | None) -> LabelSelector:
        """Parse ``{matchLabels, matchExpressions}``; raise SelectorError on what the apiserver rejects."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise SelectorError(f"label selector must be an object, got {data!r}")
        raw_labels = data.get("matchLabels") or {}
        if not isinstance(raw_labels, Mapping):
            raise SelectorError(f"matchLabels must be an object, got {raw_labels!r}")
        labels = tuple(sorted((str(k), "" if v is None else str(v)) for k, v in raw_labels.items()))
        reqs: list[Requirement] = []
        for expr in data.get("matchExpressions") or []:
            if not isinstance(expr, Mapping):
                raise SelectorError(f"matchExpressions entry must be an object, got {expr!r}")
            key = str(expr.get("key", ""))
            op = str(expr.get("operator", ""))
            values = tuple(str(v) for v in (expr.get("values") or []))
            if not key:
                raise SelectorError("matchExpressions entry has no key")
            if op not in OPERATORS:
                raise SelectorError(f'"{op}" is not a valid label selector operator')
            if op in ("In", "NotIn") and not values:
                raise SelectorError("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
            if op in ("Exists", "DoesNotExist") and values:
                raise SelectorError(
                    f"values: Invalid value: {list(values)}: values set must be empty for exists and does not exist"
                )
            reqs.append(Requirement(key, op, values))
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
