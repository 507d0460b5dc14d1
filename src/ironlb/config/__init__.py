"""ironlb's configuration: MetalLB's ``metallb.io`` resources (or legacy ConfigMap) -> a validated Config.

The CLI is a thin wrapper over :func:`validate_files` and :func:`convert_legacy`; the controller and
speakers use :func:`load_files` / :func:`load_objects` and :func:`build_config`.

Only :class:`ConfigError` is imported with the package; the rest on first use (PEP 562), so that a process that
needs one small submodule (``ironlb.config.types``, ``.reading``, ``.ifname``: the fast process, the BGP and BFD
packages) does not import the pydantic models and PyYAML with it.
"""

from __future__ import annotations

import sys
import types as _types
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironlb import lazy
from ironlb.config.errors import ConfigError

if TYPE_CHECKING:
    from ironlb.config.build import BuildResult, build, build_config
    from ironlb.config.legacy import Conversion
    from ironlb.config.loader import Resources, SecretData, load_files, load_objects, load_texts
    from ironlb.config.types import Config


class _Package(_types.ModuleType):
    """The package's ``build`` is the function, as before the names were lazy: importing the submodule of that name
    (which sets the attribute of the same name on its package) leaves it alone."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "build" and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

# The names imported on first use, and the submodule each comes from.
_LAZY = {
    "BuildResult": "build",
    "build": "build",
    "build_config": "build",
    "Conversion": "legacy",
    "Resources": "loader",
    "SecretData": "loader",
    "load_files": "loader",
    "load_objects": "loader",
    "load_texts": "loader",
    "Config": "types",
}


def summarize(result: BuildResult) -> str:
    """A short human summary of a valid config (one line per pool and peer, then warnings)."""
    cfg = result.config
    lines = [
        f"config OK: {len(cfg.pools)} pool(s), {len(cfg.peers)} BGP peer(s), {len(cfg.bfd_profiles)} BFD profile(s)"
    ]
    for pool in cfg.pools:
        ads = []
        if pool.l2_advertisements:
            ads.append("L2: " + ", ".join(a.name for a in pool.l2_advertisements))
        if pool.bgp_advertisements:
            ads.append("BGP: " + ", ".join(a.name for a in pool.bgp_advertisements))
        flags = [] if pool.auto_assign else ["autoAssign=false"]
        if pool.avoid_buggy_ips:
            flags.append("avoidBuggyIPs")
        cidrs = ", ".join(str(c) for c in pool.cidrs)
        lines.append(
            f"  pool {pool.name}: {cidrs}"
            + (f" [{', '.join(flags)}]" if flags else "")
            + (f" ({'; '.join(ads)})" if ads else " (not advertised)")
        )
    for peer in cfg.peers:
        asn = peer.peer_asn or peer.dynamic_asn
        lines.append(f"  peer {peer.name}: {peer.address} AS{peer.my_asn} -> {asn}")
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def validate_files(paths: Iterable[str | Path], *, namespace: str = "metallb-system") -> tuple[Config, str]:
    """Load and validate files; return the Config and a summary (with warnings). Raises ConfigError."""
    from ironlb.config.build import build
    from ironlb.config.loader import load_files

    resources = load_files(paths, default_namespace=namespace)
    result = build(resources, namespace=namespace)
    return result.config, summarize(result)


def convert_legacy(path: str | Path, namespace: str = "metallb-system") -> str:
    """The legacy ConfigMap at ``path`` (a ConfigMap, or just its ``data.config`` YAML) as CR YAML.

    The ConfigMap's own namespace wins over ``namespace``. The result is validated like configmaptocrs
    does (MetalLB's rules, without the feature check); raises ConfigError if it is invalid.
    """
    from ironlb.config import yamlio
    from ironlb.config.build import build
    from ironlb.config.legacy import convert, convert_configmap, is_legacy_configmap, parse_legacy, render_yaml
    from ironlb.config.loader import load_objects
    from ironlb.config.reading import read_text

    source = str(path)

    text = read_text(path)
    try:
        docs = [d for d in yamlio.load_all(text) if d is not None]
    except Exception as err:  # yaml.YAMLError
        raise ConfigError(f"{source}: invalid YAML: {err}") from None
    cms = [d for d in docs if isinstance(d, dict) and is_legacy_configmap(d)]
    if cms:
        if len(cms) > 1:
            raise ConfigError(f'{source}: more than one legacy ConfigMap "config"')
        conversion = convert_configmap(cms[0], namespace)
    elif len(docs) == 1 and isinstance(docs[0], dict) and "kind" not in docs[0]:
        conversion = convert(parse_legacy(docs[0], source), namespace)  # only the data (configmaptocrs -only-data)
    else:
        raise ConfigError(f'{source}: no legacy MetalLB ConfigMap (name "config", key data.config) found')
    resources = load_objects(conversion.documents, default_namespace=conversion.namespace)
    build(resources, namespace=conversion.namespace)
    return render_yaml(conversion)


# A public name imported on first use (see the module's docstring); the legacy ConfigMap converter among them: most
# processes never meet a ConfigMap.
__getattr__ = lazy.attributes(__name__, _LAZY)


__all__ = [
    "BuildResult",
    "Config",
    "ConfigError",
    "Conversion",
    "Resources",
    "SecretData",
    "build",
    "build_config",
    "convert_legacy",
    "load_files",
    "load_objects",
    "load_texts",
    "summarize",
    "validate_files",
]
