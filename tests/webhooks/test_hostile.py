"""The webhook server under hostile input (issue 9): malformed framing gets a 400, bodies are capped at 3 MiB,
connections are capped and heads must arrive in time, a review without an object is denied, and validation runs
off the loop with a deadline. Waits are deadlines on events, never assertions on elapsed time."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ironlb.webhooks import server as server_module
from ironlb.webhooks.server import MAX_BODY, WebhookServer

from .helpers import admission, pool

POOLS = "/validate-metallb-io-v1beta1-ipaddresspool"


async def no_objects(kind: str, namespace: str) -> list[dict[str, Any]]:
    return []


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookServer]:
    server = WebhookServer(no_objects, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def exchange(port: int, raw: bytes) -> tuple[int, Any, bool]:
    """Send raw bytes; return (status, JSON body, whether the server then closed the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 30)
        headers = {}
        while (line := await asyncio.wait_for(reader.readuntil(b"\r\n"), 30)) != b"\r\n":
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        body = json.loads(await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 30))
        closed = await asyncio.wait_for(reader.read(1), 30) == b""
        return int(status_line.split()[1]), body, closed
    finally:
        writer.close()


async def closed_by_server(reader: asyncio.StreamReader, deadline: float = 30) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), deadline) == b""
    except ConnectionError:
        return True


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: abc\r\n",
        b"Content-Length: -5\r\n",
        b"Content-Length: 1e3\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Transfer-Encoding: gzip\r\n",
    ],
)
async def test_malformed_framing_gets_400_and_close(webhook: WebhookServer, framing: bytes) -> None:
    status, body, closed = await exchange(webhook.port, b"POST " + POOLS.encode() + b" HTTP/1.1\r\n" + framing
                                          + b"\r\n{}")
    assert status == 400 and closed, (status, body)


@pytest.mark.parametrize("size_line", [b"zz", b"-1", b"", b"1" * 40])
async def test_bad_chunk_size_gets_400(webhook: WebhookServer, size_line: bytes) -> None:
    raw = b"POST " + POOLS.encode() + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\n{}\r\n"
    status, body, closed = await exchange(webhook.port, raw)
    assert status == 400 and closed, (status, body)
    assert "chunk size" in body["error"]


async def test_bodies_over_3_mib_are_refused_unread(webhook: WebhookServer) -> None:
    assert MAX_BODY == 3 * 1024 * 1024
    raw = f"POST {POOLS} HTTP/1.1\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode()  # the body is never sent
    status, _, closed = await exchange(webhook.port, raw)
    assert status == 413 and closed
    chunked = f"POST {POOLS} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{MAX_BODY + 1:x}\r\n".encode()
    status, _, closed = await exchange(webhook.port, chunked)
    assert status == 413 and closed


async def test_deeply_nested_json_is_a_400(webhook: WebhookServer) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    status, answer, _ = await exchange(
        webhook.port, f"POST {POOLS} HTTP/1.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )
    assert status == 400 and "not a JSON object" in answer["error"]


async def test_review_without_object_is_denied(webhook: WebhookServer) -> None:
    for op in ("CREATE", "UPDATE"):
        review = admission(op, pool("a", "10.0.1.0/24"), pool("a", "10.0.2.0/24") if op == "UPDATE" else None)
        del review["request"]["object"]
        body = json.dumps(review).encode()
        status, answer, _ = await exchange(
            webhook.port, f"POST {POOLS} HTTP/1.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        assert status == 200
        assert answer["response"]["allowed"] is False
        assert "without request.object" in answer["response"]["status"]["message"]


async def test_connections_are_capped_and_idle_ones_make_room(
    webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 3)
    # Three connections in the middle of a request head: the server keeps them (until HEADER_TIMEOUT)...
    slow = []
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", webhook.port)
        writer.write(b"POST " + POOLS.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        slow.append((reader, writer))
    for _ in range(100):  # until the server has accepted all three (no timing: polled with a bound)
        if len(webhook._connections) == 3:
            break
        await asyncio.sleep(0.05)
    assert len(webhook._connections) == 3
    # ...so a fourth is refused at once: closed without an answer.
    reader, writer = await asyncio.open_connection("127.0.0.1", webhook.port)
    assert await closed_by_server(reader)
    writer.close()
    assert webhook.refused == 1
    for _, w in slow:
        w.close()
    for _ in range(600):  # the server notices they are gone
        if not webhook._connections:
            break
        await asyncio.sleep(0.05)
    # Three idle keep-alive connections (between requests) give their place to a new one.
    idle = []
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", webhook.port)
        idle.append((reader, writer))
    for _ in range(100):
        if len(webhook._idle) == 3:
            break
        await asyncio.sleep(0.05)
    status, answer, _ = await exchange(webhook.port, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status == 200 and answer == {"status": "ok"}
    assert webhook.refused == 1  # the new connection was served, not refused

    def closed() -> int:
        return sum(1 for r, _ in idle if r.at_eof() or r.exception() is not None)

    for _ in range(600):
        if closed():
            break
        await asyncio.sleep(0.05)
    assert closed() == 1
    for _, w in idle:
        w.close()


async def test_a_head_must_arrive_within_the_header_timeout(
    webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "HEADER_TIMEOUT", 0.5)  # IDLE_TIMEOUT stays 120 s
    reader, writer = await asyncio.open_connection("127.0.0.1", webhook.port)
    writer.write(b"POST " + POOLS.encode() + b" HTTP/1.1\r\nHost: x\r\n")  # and never the end of the head
    await writer.drain()
    assert await closed_by_server(reader, deadline=60)
    writer.close()


async def test_validation_runs_off_the_loop_within_a_deadline(
    webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    entered = threading.Event()

    def stuck(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(60)
        raise AssertionError("released only at the end of the test")

    monkeypatch.setattr(server_module, "decide", stuck)
    monkeypatch.setattr(server_module, "VALIDATION_DEADLINE", 1.0)
    body = json.dumps(admission("CREATE", pool("a", "10.0.1.0/24"))).encode()
    review = asyncio.create_task(exchange(
        webhook.port, f"POST {POOLS} HTTP/1.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    ))
    try:
        for _ in range(600):
            if entered.is_set():
                break
            await asyncio.sleep(0.05)
        assert entered.is_set()
        # The validation is stuck on its thread, and the loop still answers.
        status, answer, _ = await exchange(webhook.port, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert status == 200 and not release.is_set()
        status, answer, _ = await asyncio.wait_for(review, 60)
        assert status == 200 and answer["response"]["allowed"] is False
        assert "could not validate this IPAddressPool within 1 s" in answer["response"]["status"]["message"]
    finally:
        release.set()
