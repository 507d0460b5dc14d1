"""BGP-4 message codec (RFC 4271, 4760, 5492, 6793, 4724, 2918, 7313, 1997, 8092, 8950), one module per message.

Pure functions on bytes, no I/O and no state: the FSM owns the state, this package only turns bytes into frozen
dataclasses and back. Every decoder validates strictly and raises :class:`~ironlb.bgp.errors.BGPError` with the
NOTIFICATION code/subcode/data that RFC 4271 section 6 prescribes, and never any other exception: the fuzz tests
hold it to that.

- :mod:`.common`: address/family types, header constants, message types;
- :mod:`.header`: framing and splitting a stream; :mod:`.nlri`: prefix encoding;
- :mod:`.open`, :mod:`.update`, :mod:`.notification`, :mod:`.keepalive`, :mod:`.refresh`: one message each;
- :mod:`.message`: :data:`Message` and :func:`decode_message`, which dispatches on the header.

Everything is re-exported here: ``from ironlb.bgp.wire import UpdateMessage``.
"""

from .common import (
    AFI_IPV4,
    AFI_IPV6,
    AS_TRANS,
    BGP_VERSION,
    HEADER_LEN,
    IPV4_UNICAST,
    IPV6_UNICAST,
    MARKER,
    MAX_MESSAGE_LEN,
    SAFI_UNICAST,
    Address,
    Family,
    MessageType,
    Network,
)
from .header import (
    check_header,
    frame,
    split_messages,
)
from .keepalive import (
    KeepaliveMessage,
    encode_keepalive,
)
from .message import (
    Message,
    decode_message,
)
from .nlri import (
    decode_prefixes,
    encode_prefix,
    family_of,
    prefix_size,
)
from .notification import (
    NotificationMessage,
    decode_notification,
    encode_notification,
    shutdown_communication,
)
from .open import (
    IPV4_OVER_IPV6,
    Capabilities,
    CapabilityCode,
    ExtendedNextHop,
    GracefulRestart,
    OpenMessage,
    decode_open,
    encode_capabilities,
    encode_open,
)
from .refresh import (
    RouteRefreshMessage,
    decode_route_refresh,
    encode_route_refresh,
)
from .update import (
    AS_CONFED_SEQUENCE,
    AS_CONFED_SET,
    AS_SEQUENCE,
    AS_SET,
    FLAG_EXTENDED_LENGTH,
    FLAG_OPTIONAL,
    FLAG_PARTIAL,
    FLAG_TRANSITIVE,
    ORIGIN_EGP,
    ORIGIN_IGP,
    ORIGIN_INCOMPLETE,
    AsPathSegment,
    AttrType,
    MPReach,
    MPUnreach,
    RawAttribute,
    UpdateMessage,
    decode_update,
    encode_as_path,
    encode_attribute,
    encode_end_of_rib,
    encode_path_attributes,
    encode_update,
)

__all__ = [
    "AFI_IPV4",
    "AFI_IPV6",
    "AS_CONFED_SEQUENCE",
    "AS_CONFED_SET",
    "AS_SEQUENCE",
    "AS_SET",
    "AS_TRANS",
    "BGP_VERSION",
    "FLAG_EXTENDED_LENGTH",
    "FLAG_OPTIONAL",
    "FLAG_PARTIAL",
    "FLAG_TRANSITIVE",
    "HEADER_LEN",
    "IPV4_OVER_IPV6",
    "IPV4_UNICAST",
    "IPV6_UNICAST",
    "MARKER",
    "MAX_MESSAGE_LEN",
    "ORIGIN_EGP",
    "ORIGIN_IGP",
    "ORIGIN_INCOMPLETE",
    "SAFI_UNICAST",
    "Address",
    "AsPathSegment",
    "AttrType",
    "Capabilities",
    "CapabilityCode",
    "ExtendedNextHop",
    "Family",
    "GracefulRestart",
    "KeepaliveMessage",
    "MPReach",
    "MPUnreach",
    "Message",
    "MessageType",
    "Network",
    "NotificationMessage",
    "OpenMessage",
    "RawAttribute",
    "RouteRefreshMessage",
    "UpdateMessage",
    "check_header",
    "decode_message",
    "decode_notification",
    "decode_open",
    "decode_prefixes",
    "decode_route_refresh",
    "decode_update",
    "encode_as_path",
    "encode_attribute",
    "encode_capabilities",
    "encode_end_of_rib",
    "encode_keepalive",
    "encode_notification",
    "encode_open",
    "encode_path_attributes",
    "encode_prefix",
    "encode_route_refresh",
    "encode_update",
    "family_of",
    "frame",
    "prefix_size",
    "shutdown_communication",
    "split_messages",
]
