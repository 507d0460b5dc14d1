"""Package attributes imported on first use (PEP 562), so that importing one small submodule of a package does not
import all of it: Python runs a package's ``__init__`` before any of its submodules (issue 16, fast start)."""

from __future__ import annotations

import importlib
import importlib.util
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


def package_without_init(package: str, names: Mapping[str, str], eager: tuple[str, ...] = ()) -> None:
    """Register a third-party ``package`` whose ``__init__`` imports far more than ironlb uses, without running
    that ``__init__``: its submodules import as usual, ``names`` (name -> submodule) are served from the submodule
    on first use, ``eager`` submodules are imported now (those whose import has a side effect the package's own
    ``__init__`` would have had), and any other attribute runs the real ``__init__`` first, so that a caller
    asking for something else sees the whole package. Does nothing if the package is already imported."""
    if package in sys.modules:
        return
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not a plain package: import it as usual
    module = importlib.util.module_from_spec(spec)
    complete = False

    def __getattr__(name: str) -> Any:
        nonlocal complete
        submodule = names.get(name)
        if submodule is not None:
            value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        elif name.startswith("__"):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        elif importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")  # ``from package import submodule`` asks first
        elif not complete:
            complete = True  # idempotent if two threads both get here: the submodules are cached
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            value = getattr(module, name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(module, name, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[package] = module
    try:
        for submodule in eager:
            importlib.import_module(f"{package}.{submodule}")
    except BaseException:
        del sys.modules[package]
        raise
