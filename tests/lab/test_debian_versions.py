"""The Debian versions record (requirements/debian-*.txt) and the drift report of the image build."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironlb.lab import debian_versions

REPO = Path(__file__).resolve().parents[2]

STATUS = """\
Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.20-1~deb12u2
Description: Secure Sockets Layer toolkit
 Version: not a field, a description line

Package: iproute2
Status: deinstall ok config-files
Version: 6.1.0-3

Package: python3.11
Status: install ok installed
Version: 3.11.2-6+deb12u6
"""


def test_installed_takes_installed_packages_only() -> None:
    assert debian_versions.installed(STATUS) == {"openssl": "3.0.20-1~deb12u2", "python3.11": "3.11.2-6+deb12u6"}


def test_record_round_trip_and_drift() -> None:
    now = debian_versions.installed(STATUS)
    text = debian_versions.format_record(now, "two\nlines")
    assert text.startswith("# two\n# lines\n")
    assert debian_versions.read_record(text) == now
    recorded = {"openssl": "3.0.19-1~deb12u2", "iproute2": "6.1.0-3", "python3.11": "3.11.2-6+deb12u6"}
    assert debian_versions.drift(recorded, now) == ["iproute2 6.1.0-3 -> -", "openssl 3.0.19-1~deb12u2 -> 3.0.20-1~deb12u2"]
    assert debian_versions.drift(now, now) == []


def test_bad_record_line_names_it() -> None:
    with pytest.raises(ValueError, match=r"line 2: not 'package version'"):
        debian_versions.read_record("# c\nopenssl\n")


def test_oversized_status_is_refused() -> None:
    with pytest.raises(ValueError, match="dpkg status of"):
        debian_versions.installed("x" * (debian_versions.MAX_STATUS + 1))


@pytest.mark.parametrize(("name", "expected"), [("debian-image.txt", {"openssl", "iproute2", "python3.11"}),
                                                ("debian-host.txt", {"containerd", "frr", "debootstrap"})])
def test_records_parse_and_hold_what_is_installed(name: str, expected: set[str]) -> None:
    record = debian_versions.read_record((REPO / "requirements" / name).read_text())
    assert expected <= record.keys()
