"""The error type of the config package: every problem found, not just the first one."""

from __future__ import annotations

from collections.abc import Iterable

from ironlb.cluster.gofmt import goq

__all__ = ["ConfigError", "goq"]


class ConfigError(ValueError):
    """An invalid configuration.

    ``messages`` holds one line per problem (each names the resource, the field and the bad value, and
    contains MetalLB's own wording); ``str()`` joins them with newlines. ``transient`` is true when every
    problem is a dangling reference (a missing Secret, BFDProfile or community alias) that MetalLB treats
    as a TransientError: the config may become valid once the referenced object exists.
    """

    def __init__(self, messages: Iterable[str] | str, *, transient: bool = False) -> None:
        msgs = [messages] if isinstance(messages, str) else list(messages)
        self.messages: list[str] = msgs
        self.transient = transient
        super().__init__("\n".join(msgs))

    def __str__(self) -> str:
        return "\n".join(self.messages)

