"""BGP community text, parsed as MetalLB's ``internal/bgp/community`` package does.

``N:M`` (16-bit halves) is a standard community; ``large:A:B:C`` (32-bit each) a large one. Any other
shape is a *format* error, which MetalLB treats as a possibly-dangling alias (a TransientError); a bad
number or marker is a *value* error.
"""

from __future__ import annotations

from ironlb.config.errors import goq
from ironlb.config.types import Community


class CommunityError(ValueError):
    """A community string MetalLB rejects. ``is_format`` marks "not of a known shape" (maybe an alias)."""

    def __init__(self, message: str, *, is_format: bool) -> None:
        super().__init__(message)
        self.is_format = is_format


def _go_parse_uint(text: str, bits: int) -> int:
    """strconv.ParseUint(text, 10, bits), with Go's error text."""
    if text == "" or not text.isascii() or not text.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value >= 1 << bits:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def _sections(fields: list[str], bits: int, text: str) -> list[int]:
    """The numbers of a community's sections, each ``bits`` wide; a value error naming the bad one."""
    out = []
    for f in fields:
        try:
            out.append(_go_parse_uint(f, bits))
        except ValueError as err:
            raise CommunityError(
                f"invalid community value: invalid section {goq(f)} of community {goq(text)}, err: {goq(err)}",
                is_format=False,
            ) from None
    return out


def parse_community(text: str) -> Community:
    """Parse ``text`` into a Community; raise CommunityError with MetalLB's message."""
    fields = text.split(":")
    if len(fields) == 2:
        halves = _sections(fields, 16, text)
        return Community(((halves[0] << 16) | halves[1],))
    if len(fields) == 4:
        if fields[0] != "large":
            raise CommunityError(
                "invalid community value: invalid marker for large community, expected community to be of "
                f"format large:<uint32>:<uint32>:<uint32> but got {goq(text)} instead",
                is_format=False,
            )
        parts = _sections(fields[1:], 32, text)
        return Community((parts[0], parts[1], parts[2]))
    raise CommunityError(f"invalid community format: {text}", is_format=True)
