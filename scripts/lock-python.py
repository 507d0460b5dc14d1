#!/usr/bin/env python3
"""Writes the Python lock files from pyproject.toml with `pip lock` (pip >= 25.1), so every install of ironlb's
dependencies gets the same versions and the same bytes (pip checks each file's sha256: `--require-hashes`):

    requirements/test.txt     what `make setup` installs into .venv: the dependencies, the test tools, setuptools
                              (the build backend: the editable install runs without build isolation) and pip
    requirements/ironlb.txt   what the image installs (Dockerfile): the dependencies and setuptools, at the same
                              versions as in test.txt

Run it after changing a dependency in pyproject.toml (tests/test_python_lock.py fails until then); it takes the
newest versions that pyproject allows. The hashes are those of the files pip picks here: CPython 3.11 on Linux
x86_64 (Debian 12, the image's base and CI). scripts/setup.sh installs the same versions without hash checks on
any other platform.

    .venv/bin/python scripts/lock-python.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "requirements"
BUILD = ["setuptools>=68"]  # the build backend of pyproject.toml's [build-system]
HEADER = """\
# {what}
# Written by scripts/lock-python.py from pyproject.toml: do not edit (tests/test_python_lock.py compares them).
# Hashes of the files pip picks for CPython 3.11 on Linux x86_64.
"""


def pip_lock(args: list[str]) -> list[dict[str, object]]:
    """The packages `pip lock ARGS` resolves, the project itself left out."""
    out = subprocess.run([sys.executable, "-m", "pip", "lock", "-q", "-o", "-", *args], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return [p for p in tomllib.loads(out)["packages"] if "directory" not in p]


def requirement_lines(packages: list[dict[str, object]]) -> list[str]:
    lines = []
    for p in sorted(packages, key=lambda p: str(p["name"])):
        files = list(p.get("wheels", [])) + ([p["sdist"]] if "sdist" in p else [])  # type: ignore[call-overload]
        hashes = sorted(f"--hash=sha256:{f['hashes']['sha256']}" for f in files)
        lines.append(f"{p['name']}=={p['version']} {' '.join(hashes)}")
    return lines


def main() -> int:
    test = requirement_lines(pip_lock([".[test]", *BUILD, "pip"]))
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as pins:
        pins.write("".join(line.split(" ")[0] + "\n" for line in test))  # the runtime set at test.txt's versions
        pins.flush()
        runtime = requirement_lines(pip_lock([".", *BUILD, "-c", pins.name]))
    OUT.mkdir(exist_ok=True)
    (OUT / "test.txt").write_text(HEADER.format(what="make setup: ironlb's dependencies, its test tools, setuptools "
                                                     "and pip.") + "\n".join(test) + "\n")
    (OUT / "ironlb.txt").write_text(HEADER.format(what="The image (Dockerfile): ironlb's dependencies and "
                                                       "setuptools.") + "\n".join(runtime) + "\n")
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    print(f"lock-python: {len(test)} packages in requirements/test.txt, {len(runtime)} in requirements/ironlb.txt "
          f"({len(deps)} direct dependencies)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
