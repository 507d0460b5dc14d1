"""Whether a string can name a Linux network interface (the kernel's ``dev_valid_name``)."""

from __future__ import annotations

IFNAMSIZ = 16
"""Linux's limit on an interface name, the terminating NUL included."""


def interface_name_problem(name: str) -> str:
    """Why ``name`` can never name a Linux interface, or "" when it can."""
    if not name:
        return "empty name"
    if len(name.encode()) >= IFNAMSIZ:
        return f"longer than {IFNAMSIZ - 1} bytes"
    if name in (".", ".."):
        return "not a valid interface name"
    if any(c in "/:" or c.isspace() for c in name):
        return "contains '/', ':' or whitespace"
    return ""
