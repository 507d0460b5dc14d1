"""YAML reading that types scalars the way Kubernetes tooling (go-yaml via sigs.k8s.io/yaml) does.

PyYAML follows YAML 1.1 fully, so ``64512:1`` would become the sexagesimal integer 3870721 and
``2024-01-01`` a date. Kubernetes reads both as strings, and BGP communities are written exactly like
that, so those two implicit resolvers are replaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_REPLACED = {"tag:yaml.org,2002:int": _INT, "tag:yaml.org,2002:float": _FLOAT}


class KubeLoader(yaml.SafeLoader):
    """SafeLoader without sexagesimal numbers and timestamps."""


KubeLoader.yaml_implicit_resolvers = {
    first: [(tag, _REPLACED.get(tag, regexp)) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(text: str) -> Any:
    return yaml.load(text, Loader=KubeLoader)


def load_all(text: str) -> Iterator[Any]:
    return yaml.load_all(text, Loader=KubeLoader)
