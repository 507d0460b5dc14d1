"""YAML reading that types scalars the way Kubernetes tooling (go-yaml via sigs.k8s.io/yaml) does, within bounds.

PyYAML follows YAML 1.1 fully, so ``64512:1`` would become the sexagesimal integer 3870721 and
``2024-01-01`` a date. Kubernetes reads both as strings, and BGP communities are written exactly like
that, so those two implicit resolvers are replaced.

Hostile YAML is normal input here (a state directory, a ConfigMap): every document is composed into its node graph
first (by libyaml when PyYAML has it, 5-10 times faster than pure Python), and that graph is checked before any
Python object is built. An alias is a shared node in the graph, so the check counts the nodes each alias stands
for without expanding anything: a document nested deeper than ``MAX_DEPTH`` collections, or whose aliases would
add more than ``MAX_ALIAS_NODES`` nodes (shared by every text of one load, see :class:`Budget`), is refused with
a :class:`YAMLLimitError`. Any other failure while building the objects also comes out as a ``yaml.YAMLError``.
A plain tree (no alias, not too deep, only maps, sequences and plain scalars: nearly every manifest) is checked and
built in the same single visit, which stops at the first node that is not plain; the full check runs then.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 100  # nested collections; Kubernetes objects, CRD schemas included, stay far below
MAX_ALIAS_NODES = 200_000  # nodes that aliases may add, over every text of one load
MAX_TEXT_CHARS = 8 * 1024 * 1024  # one text, e.g. a ConfigMap's data (the apiserver caps a ConfigMap at 1 MiB)

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
_RESOLVERS = {
    first: [(tag, _REPLACED.get(tag, regexp)) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class KubeLoader(yaml.SafeLoader):
    """SafeLoader without sexagesimal numbers and timestamps (pure Python)."""


KubeLoader.yaml_implicit_resolvers = _RESOLVERS

_Loader: type[Any] = KubeLoader
if getattr(yaml, "__with_libyaml__", False):

    class KubeCLoader(yaml.CSafeLoader):
        """The same typing rules on libyaml's parser and composer."""

    KubeCLoader.yaml_implicit_resolvers = _RESOLVERS
    _Loader = KubeCLoader

LIBYAML = _Loader is not KubeLoader


class YAMLLimitError(yaml.YAMLError):
    """A document refused for its shape (depth, aliases, size), before it was built."""


class Budget:
    """How many nodes aliases may still add: one budget for all the texts of one load."""

    def __init__(
        self, alias_nodes: int = MAX_ALIAS_NODES, max_depth: int = MAX_DEPTH, max_chars: int = MAX_TEXT_CHARS
    ) -> None:
        self.alias_nodes = alias_nodes
        self.max_depth = max_depth
        self.max_chars = max_chars  # per text; files are bounded in bytes before (ReadLimits), and this follows


def _where(node: Node) -> str:
    mark = node.start_mark
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value)


def _plain_tree(root: Node, max_depth: int) -> bool:
    """Whether ``root`` is a tree (no node reached twice: no alias) with at most ``max_depth`` nested collections:
    what nearly every manifest is, and then :func:`check` has nothing to refuse. One cheap visit per node; anything
    else (an alias, too deep) returns False and is left to the full check, which words the refusal."""
    seen: set[int] = set()
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, level = stack.pop()
        key = id(node)
        if key in seen:
            return False
        seen.add(key)
        if isinstance(node, ScalarNode):
            continue
        if level > max_depth:
            return False
        if isinstance(node, MappingNode):
            for k, v in node.value:
                stack.append((k, level + 1))
                stack.append((v, level + 1))
        else:
            stack.extend((k, level + 1) for k in node.value)
    return True


def check(root: Node, budget: Budget) -> None:
    """Refuse a node graph that is too deep, recursive, or whose aliases expand past the budget.

    Iterative and memoized per node, so it costs one visit per distinct node whatever the aliases expand to. A
    plain tree (:func:`_plain_tree`) passes at once: it adds no node and is not too deep.
    """
    if _plain_tree(root, budget.max_depth):
        return
    size: dict[int, int] = {}  # id -> nodes it stands for, expanded
    depth: dict[int, int] = {}  # id -> nested collections, itself included
    open_: set[int] = set()
    distinct = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if depth[key] > budget.max_depth:
                raise YAMLLimitError(f"nested deeper than {budget.max_depth} levels{_where(node)}")
            continue
        if key in size:
            continue
        if key in open_:
            raise YAMLLimitError(f"an alias refers to a node that contains it{_where(node)}")
        distinct += 1
        if isinstance(node, ScalarNode):
            size[key], depth[key] = 1, 0
            continue
        open_.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node))
    added = size[id(root)] - distinct
    if added > budget.alias_nodes:
        raise YAMLLimitError(
            f"aliases would expand to {added} more nodes than written, over the limit of {budget.alias_nodes}; "
            "refused, not expanded"
        )
    budget.alias_nodes -= added


_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_STR = "tag:yaml.org,2002:str"
# Scalars whose constructor is a plain function of the node (no generator, no state): what manifests hold.
_PLAIN_SCALARS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))


class _NotPlain(Exception):
    """Not a plain tree of maps, sequences and plain scalars: left to the full check and PyYAML's constructor."""


def _build_plain(loader: Any, root: Node, max_depth: int) -> Any:
    """The objects of a plain tree (see :func:`_plain_tree`) of maps, sequences and str/int/float/bool/null
    scalars, built in one visit: what ``check`` then ``construct_document`` give for it (the scalars by PyYAML's own
    constructors), at a third of the cost (issue 16: 1,000 Services in a state directory took ~40 ms to
    construct). Raises :class:`_NotPlain` for anything else: an alias, a node too deep, a merge key, another tag,
    or a scalar its constructor refuses (the full path then reports it as before)."""
    constructors = loader.yaml_constructors
    seen: set[int] = set()

    def build(node: Node, level: int) -> Any:
        key = id(node)
        if key in seen:
            raise _NotPlain
        seen.add(key)
        cls = type(node)
        tag = node.tag
        if cls is ScalarNode:
            if tag == _STR:
                return node.value
            if tag in _PLAIN_SCALARS:
                try:
                    return constructors[tag](loader, node)
                except Exception:
                    raise _NotPlain from None
            raise _NotPlain
        if level > max_depth:
            raise _NotPlain
        if cls is MappingNode and tag == _MAP:
            out: dict[Any, Any] = {}
            for k, v in node.value:
                if type(k) is not ScalarNode or k.tag not in _PLAIN_SCALARS:
                    raise _NotPlain  # a merge key ("<<"), "=", a collection as a key
                out[build(k, level + 1)] = build(v, level + 1)
            return out
        if cls is SequenceNode and tag == _SEQ:
            return [build(child, level + 1) for child in node.value]
        raise _NotPlain

    return build(root, 1)


def load_all(text: str, budget: Budget | None = None) -> list[Any]:
    """Every document of ``text``, checked before it is built; raises ``yaml.YAMLError`` (never anything else)."""
    budget = budget or Budget()
    if len(text) > budget.max_chars:
        raise YAMLLimitError(f"{len(text)} characters, over the limit of {budget.max_chars}")
    loader = _Loader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            try:
                docs.append(_build_plain(loader, node, budget.max_depth))
            except _NotPlain:
                check(node, budget)
                docs.append(loader.construct_document(node))
    except yaml.YAMLError:
        raise
    except RecursionError:  # the pure-Python composer recurses per level: deep input ends here
        raise YAMLLimitError(f"nested deeper than {budget.max_depth} levels") from None
    except Exception as err:  # e.g. int("0b_"): the value of a scalar PyYAML resolved but cannot build
        raise yaml.YAMLError(f"cannot read a value: {type(err).__name__}: {err}") from None
    finally:
        loader.dispose()
    return docs


def load(text: str, budget: Budget | None = None) -> Any:
    """The single document of ``text`` (None when empty); more than one document is an error."""
    docs = load_all(text, budget)
    if len(docs) > 1:
        raise yaml.YAMLError("expected a single document in the stream, but found another document")
    return docs[0] if docs else None
