"""Shared helpers: YAML text in, Config or error messages out."""

from __future__ import annotations

import textwrap

import pytest

from ironlb.config import ConfigError, build, load_texts
from ironlb.config.build import BuildResult
from ironlb.config.types import Config


def resources(text: str):  # type: ignore[no-untyped-def]
    return load_texts([("test.yaml", textwrap.dedent(text))])


def config_of(text: str) -> Config:
    return build(resources(text)).config


def result_of(text: str) -> BuildResult:
    return build(resources(text))


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        build(resources(text))
    return info.value


def pool(name: str, *addresses: str, extra: str = "") -> str:
    addrs = "".join(f"\n    - {a!r}" for a in addresses)
    return f"""
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {name}, namespace: metallb-system}}
spec:
  addresses:{addrs if addresses else " []"}
{textwrap.indent(textwrap.dedent(extra), "  ")}"""


def advertisement(kind: str, name: str, spec: str = "{}") -> str:
    """A BGPAdvertisement or L2Advertisement named ``name`` with ``spec`` (YAML, any indentation)."""
    return f"""
---
apiVersion: metallb.io/v1beta1
kind: {kind}
metadata: {{name: {name}}}
spec:
{textwrap.indent(textwrap.dedent(spec), "  ") if spec != "{}" else "  {}"}"""


def bgp_ad(name: str, spec: str = "{}") -> str:
    return advertisement("BGPAdvertisement", name, spec)


def l2_ad(name: str, spec: str = "{}") -> str:
    return advertisement("L2Advertisement", name, spec)


def peer(name: str, spec: str, version: str = "v1beta2") -> str:
    return f"""
---
apiVersion: metallb.io/{version}
kind: BGPPeer
metadata: {{name: {name}}}
spec:
{textwrap.indent(textwrap.dedent(spec), "  ")}"""
