"""The Debian package versions an image or a host was built with, recorded in a file, and how today's differ.

Debian packages cannot be pinned here: deb.debian.org keeps only the current version of each package in a suite
(a point release or a security update removes the previous .deb from the pool, so ``apt-get install pkg=version``
fails after the next update), and snapshot.debian.org, which keeps every version, is not reachable from this
machine. So the versions used are recorded (requirements/debian-*.txt) and the builds report what moved.
"""

from __future__ import annotations

MAX_STATUS = 64 << 20  # a dpkg status file of a few thousand packages is a few MiB


def installed(status: str) -> dict[str, str]:
    """{package: version} of the installed packages of a dpkg status file (``/var/lib/dpkg/status``)."""
    if len(status) > MAX_STATUS:
        raise ValueError(f"dpkg status of {len(status)} bytes, over {MAX_STATUS}")
    packages: dict[str, str] = {}
    for stanza in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[:1].isspace())
        if fields.get("Status", "").endswith(" installed") and "Package" in fields and "Version" in fields:
            packages[fields["Package"]] = fields["Version"]
    return packages


def read_record(text: str) -> dict[str, str]:
    """{package: version} of a record file: ``package version`` lines, ``#`` comments."""
    record: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"line {n}: not 'package version': {line[:200]!r}")
        record[parts[0]] = parts[1]
    return record


def format_record(packages: dict[str, str], header: str) -> str:
    lines = [f"# {h}" for h in header.splitlines()]
    return "\n".join([*lines, *(f"{p} {v}" for p, v in sorted(packages.items()))]) + "\n"


def drift(recorded: dict[str, str], now: dict[str, str]) -> list[str]:
    """What differs, one line a package: ``name recorded -> now`` (``-`` for absent), in name order."""
    return [f"{p} {recorded.get(p, '-')} -> {now.get(p, '-')}"
            for p in sorted(recorded.keys() | now.keys()) if recorded.get(p) != now.get(p)]
