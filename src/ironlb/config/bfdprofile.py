"""A BFDProfile after validation: its own module, so that the fast process (which runs BFD and gets profiles as
JSON) does not import the rest of the configuration types and the label selectors behind them (issue 16, fast
start). :mod:`ironlb.config.types` re-exports these names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BFDAuthentication:
    """Keyed SHA1 BFD authentication (RFC 5880 §6.7.4), from the Secret named by ironlb's BFDProfile annotation
    BFD_AUTH_ANNOTATION (MetalLB ignores it). ``password`` is the key (1-20 bytes of UTF-8); never printed."""

    type: str  # BFD_AUTH_TYPES
    key_id: int
    password: str = field(repr=False)


@dataclass(frozen=True)
class BFDProfile:
    name: str
    receive_interval: int = 300  # ms
    transmit_interval: int = 300  # ms
    detect_multiplier: int = 3
    echo_interval: int = 50  # ms
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int = 254
    auth: BFDAuthentication | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BFDProfile:
        """The inverse of ``dataclasses.asdict`` (the fast process gets profiles as JSON)."""
        fields = dict(data)
        auth = fields.pop("auth", None)
        return cls(**fields, auth=BFDAuthentication(**auth) if auth else None)


# The BFDProfile annotation of ironlb's own naming a Secret (MetalLB's namespace) with keys "password" (the key),
# "type" (one of BFD_AUTH_TYPES, default meticulous-keyed-sha1) and "keyID" (0-255, default 1).
BFD_AUTH_ANNOTATION = "ironlb.io/bfd-auth-secret"
BFD_AUTH_TYPES = ("keyed-sha1", "meticulous-keyed-sha1")
