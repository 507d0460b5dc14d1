"""Package attributes imported on first use (PEP 562), so that importing one small submodule of a package does not
import all of it: Python runs a package's ``__init__`` before any of its submodules (issue 16, fast start)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def attributes(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's module-level ``__getattr__``: ``names`` maps each public name to the submodule (relative to
    ``package``) it comes from; the value is cached on the package once imported."""

    def __getattr__(name: str) -> Any:
        submodule = names.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
