"""The Python lock files (requirements/, written by scripts/lock-python.py) agree with pyproject.toml: every
dependency it declares is pinned within its bounds, nothing else is pinned but what they pull in, the image's lock
is the test lock's subset at the same versions and hashes, and this venv (made by `make setup`) is the lock's."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LINE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)(?P<hashes>( --hash=sha256:[0-9a-f]{64})+)$")
FIX = "run scripts/lock-python.py (and make setup)"


def read_lock(name: str) -> dict[str, tuple[str, str]]:
    """{canonical name: (version, hashes)} of requirements/NAME; every line pinned and hashed."""
    pins: dict[str, tuple[str, str]] = {}
    for line in (REPO / "requirements" / name).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"requirements/{name}: not 'name==version --hash=sha256:...': {line!r}"
        pins[canonicalize_name(m["name"])] = (m["version"], m["hashes"])
    return pins


TEST_LOCK = read_lock("test.txt")
IMAGE_LOCK = read_lock("ironlb.txt")
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
TEST_EXTRA = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]]
BUILD = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]


@pytest.mark.parametrize(("lock", "declared"), [("test.txt", RUNTIME + TEST_EXTRA + BUILD), ("ironlb.txt", RUNTIME + BUILD)])
def test_declared_dependencies_are_pinned_within_bounds(lock: str, declared: list[Requirement]) -> None:
    pins = read_lock(lock)
    for req in declared:
        pinned = pins.get(canonicalize_name(req.name))
        assert pinned, f"pyproject.toml requires {req} but requirements/{lock} does not pin it: {FIX}"
        assert req.specifier.contains(Version(pinned[0]), prereleases=True), (
            f"requirements/{lock} pins {req.name}=={pinned[0]}, outside pyproject.toml's {req}: {FIX}")


def test_image_lock_is_the_test_locks_subset() -> None:
    for name, pinned in IMAGE_LOCK.items():
        assert TEST_LOCK.get(name) == pinned, f"{name}: requirements/ironlb.txt and test.txt differ: {FIX}"


def closure(roots: list[Requirement]) -> set[str]:
    """The distributions ROOTS need, transitively, from the installed metadata (markers evaluated, extras followed)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(r.name, frozenset(r.extras)) for r in roots]
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        for text in importlib.metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


def test_venv_is_the_lock() -> None:
    """make setup installs requirements/test.txt: a venv of other versions would make the next test meaningless."""
    for name, (version, _) in TEST_LOCK.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{name}=={version} of requirements/test.txt is not installed: make setup")
        assert installed == version, f"{name} {installed} installed, requirements/test.txt pins {version}: make setup"


@pytest.mark.parametrize(("lock", "roots"), [("test.txt", RUNTIME + TEST_EXTRA + BUILD + [Requirement("pip")]),
                                             ("ironlb.txt", RUNTIME + BUILD)])
def test_lock_pins_only_what_pyproject_pulls_in(lock: str, roots: list[Requirement]) -> None:
    test_venv_is_the_lock()
    needed = closure(roots)
    pinned = set(read_lock(lock))
    assert not needed - pinned, f"requirements/{lock} lacks {sorted(needed - pinned)}: {FIX}"
    assert not pinned - needed, f"requirements/{lock} pins {sorted(pinned - needed)}, which nothing requires: {FIX}"
