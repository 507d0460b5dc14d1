"""The channel's framing: messages round-trip in any split, and a confused peer is refused with a bound."""

from __future__ import annotations

import struct

import pytest

from ironlb.fastproc.channel import ChannelError, Decoder, encode


def test_messages_round_trip_whatever_the_split() -> None:
    messages = [{"t": "announce", "layer2": {f"10.0.{i // 256}.{i % 256}": []}} for i in range(300)]
    data = b"".join(encode(m) for m in messages)
    for step in (1, 7, 4096, len(data)):
        d = Decoder()
        out = []
        for i in range(0, len(data), step):
            out += d.feed(data[i : i + step])
        assert out == messages


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack(">I", 1 << 30),  # announced longer than the limit: refused before buffering
        struct.pack(">I", 3) + b"\xff\xfe\xfd",
        struct.pack(">I", 2) + b"[]",
        struct.pack(">I", 9) + b'{"t": 1} ',
    ],
)
def test_bad_frames_are_channel_errors(frame: bytes) -> None:
    with pytest.raises(ChannelError):
        Decoder(max_frame=1 << 20).feed(frame)


def test_an_oversized_message_is_refused_when_encoding() -> None:
    with pytest.raises(ChannelError):
        encode({"t": "x", "pad": "a" * (17 * 1024 * 1024)})
