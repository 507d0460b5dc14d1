"""Go's ``%q`` for strings: MetalLB's and apimachinery's messages quote values this way."""

from __future__ import annotations


def goq(value: object) -> str:
    """Go's ``%q``: a double-quoted string with backslash escapes, so messages read exactly as MetalLB's."""
    text = str(value)
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
