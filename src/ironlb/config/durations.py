"""Go ``time.Duration`` text: parsing as ``time.ParseDuration`` does and printing as ``Duration.String``.

Kubernetes ``metav1.Duration`` fields (holdTime, keepaliveTime, connectTime) use this syntax, so values
like ``90s``, ``1m30s`` or ``1.5h`` must be read exactly as MetalLB reads them, and error messages must
print them back the way Go does (``90s`` prints as ``1m30s``).
"""

from __future__ import annotations

NANOSECOND = 1
MICROSECOND = 1000
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5
    "μs": MICROSECOND,  # U+03BC
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_DIGITS = "0123456789"
_MAX = (1 << 63) - 1


class DurationError(ValueError):
    """Text that ``time.ParseDuration`` rejects; the message is Go's."""


def _span(s: str, i: int, accept: bool) -> int:
    """Index of the first character at or after i that is (accept=False) / is not (accept=True) a digit."""
    while i < len(s) and (s[i] in _DIGITS) == accept:
        i += 1
    return i


def parse_go_duration(text: str) -> int:
    """Parse Go duration text (``90s``, ``1m30s``, ``1.5h``, ``-2ms``, ``0``) into integer nanoseconds."""
    quoted = '"' + text + '"'
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise DurationError(f"time: invalid duration {quoted}")
    total = 0
    i = 0
    while i < len(s):
        if s[i] != "." and s[i] not in _DIGITS:
            raise DurationError(f"time: invalid duration {quoted}")
        j = _span(s, i, True)
        whole = s[i:j]
        frac = ""
        if j < len(s) and s[j] == ".":
            k = _span(s, j + 1, True)
            frac = s[j + 1 : k]
            j = k
        if not whole and not frac:
            raise DurationError(f"time: invalid duration {quoted}")
        k = j
        while k < len(s) and s[k] != "." and s[k] not in _DIGITS:
            k += 1
        unit = s[j:k]
        if not unit:
            raise DurationError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise DurationError(f'time: unknown unit "{unit}" in duration {quoted}')
        scale = _UNITS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // (10 ** len(frac))
        if total > _MAX:
            raise DurationError(f"time: invalid duration {quoted}")
        i = k
    return -total if neg else total


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Digits of v / 10**prec after the decimal point, trailing zeros dropped (Go's fmtFrac)."""
    digits = ""
    printed = False
    for _ in range(prec):
        d = v % 10
        printed = printed or d != 0
        if printed:
            digits = str(d) + digits
        v //= 10
    return ("." + digits if printed else ""), v


def format_duration(ns: int) -> str:
    """``time.Duration.String()``: 90s -> "1m30s", 2m -> "2m0s", 1.5s -> "1.5s", 0 -> "0s"."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = -ns if neg else ns
    if u < SECOND:
        if u < MICROSECOND:
            out = f"{u}ns"
        elif u < MILLISECOND:
            frac, whole = _fmt_frac(u, 3)
            out = f"{whole}{frac}µs"
        else:
            frac, whole = _fmt_frac(u, 6)
            out = f"{whole}{frac}ms"
    else:
        frac, secs = _fmt_frac(u, 9)
        out = f"{secs % 60}{frac}s"
        mins = secs // 60
        if mins > 0:
            out = f"{mins % 60}m" + out
            hours = mins // 60
            if hours > 0:
                out = f"{hours}h" + out
    return "-" + out if neg else out
