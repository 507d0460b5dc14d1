"""BGP protocol errors (RFC 4271 section 6) as one exception type.

Every decoder raises :class:`BGPError` carrying exactly the NOTIFICATION the
FSM must send, so error handling is a single ``except BGPError`` in the FSM.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """NOTIFICATION error codes (RFC 4271 4.5, RFC 7313)."""

    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    CEASE = 6
    ROUTE_REFRESH = 7


class HeaderSubcode(IntEnum):
    """Subcodes of error code 1."""

    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenSubcode(IntEnum):
    """Subcodes of error code 2 (RFC 4271, RFC 5492)."""

    UNSPECIFIC = 0
    UNSUPPORTED_VERSION = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7


class UpdateSubcode(IntEnum):
    """Subcodes of error code 3."""

    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN = 6
    INVALID_NEXT_HOP = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class FSMSubcode(IntEnum):
    """Subcodes of error code 5 (RFC 6608)."""

    UNSPECIFIED = 0
    UNEXPECTED_IN_OPENSENT = 1
    UNEXPECTED_IN_OPENCONFIRM = 2
    UNEXPECTED_IN_ESTABLISHED = 3


class CeaseSubcode(IntEnum):
    """Subcodes of error code 6 (RFC 4486, RFC 8538)."""

    MAX_PREFIXES = 1
    ADMINISTRATIVE_SHUTDOWN = 2
    PEER_DECONFIGURED = 3
    ADMINISTRATIVE_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIGURATION_CHANGE = 6
    CONNECTION_COLLISION = 7
    OUT_OF_RESOURCES = 8
    HARD_RESET = 9


_CODE_NAMES = {
    1: "message header error",
    2: "OPEN message error",
    3: "UPDATE message error",
    4: "hold timer expired",
    5: "finite state machine error",
    6: "cease",
    7: "ROUTE-REFRESH message error",
}

_SUBCODE_NAMES: dict[int, type[IntEnum]] = {
    1: HeaderSubcode,
    2: OpenSubcode,
    3: UpdateSubcode,
    5: FSMSubcode,
    6: CeaseSubcode,
}


def describe(code: int, subcode: int) -> str:
    """Human-readable ``code/subcode`` text for logs (like MetalLB's code table)."""
    name = _CODE_NAMES.get(code, f"unknown error code {code}")
    enum = _SUBCODE_NAMES.get(code)
    sub = ""
    if enum is not None:
        try:
            sub = enum(subcode).name.lower().replace("_", " ")
        except ValueError:
            sub = f"subcode {subcode}"
    elif subcode:
        sub = f"subcode {subcode}"
    return f"{name} ({code}/{subcode}{': ' + sub if sub else ''})"


class BGPError(Exception):
    """A protocol error that must be answered with NOTIFICATION(code, subcode, data).

    ``message`` is for humans (logs, SessionDown reasons); it never goes on the wire.
    """

    def __init__(self, code: int, subcode: int, data: bytes = b"", message: str = "") -> None:
        self.code = int(code)
        self.subcode = int(subcode)
        self.data = bytes(data)
        self.message = message or describe(code, subcode)
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"BGPError({self.code}, {self.subcode}, {self.data!r}, {self.message!r})"
