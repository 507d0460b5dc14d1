"""The Kubernetes client's own HTTP/1.1 transport (``ironlb.kube.transport``) against a scripted local server:
bodies by length and chunked, keep-alive reuse, a body not read to its end, the pool bound, timeouts and broken
answers as httpx's errors (the client's ``TransportError``), and a kept-alive connection the server closed."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import httpx2 as httpx
import pytest

from ironlb.kube.client import KubeClient, TransportError
from ironlb.kube.transport import Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """Counts connections; ``handler`` answers each (a loop over requests on one connection)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                self.open -= 1
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """The request head (and its body by Content-Length), or None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    return head + (await reader.readexactly(length) if length else b"")


def answer(body: bytes, status: str = "200 OK") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while (request := await read_request(reader)) is not None:
        path = request.split(b" ")[1].decode()
        writer.write(answer(b'{"path": "%s", "sent": %d}' % (path.encode(), len(request))))
        await writer.drain()


def client(url: str, **options: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, transport=Transport(ssl.create_default_context(), **options))  # type: ignore[arg-type]


async def test_requests_reuse_one_kept_alive_connection() -> None:
    server = Server(keep_alive)
    async with server as url, client(url) as http:
        for i in range(3):
            resp = await http.get(f"/api/v1/x{i}", params={"limit": "500"})
            assert resp.status_code == 200 and resp.json()["path"] == f"/api/v1/x{i}?limit=500"
        resp = await http.post("/p", content=b'{"a": 1}', headers={"Content-Type": "application/json"})
        assert resp.json()["sent"] > 8 and resp.http_version == "HTTP/1.1"
    assert server.connections == 1


async def test_a_chunked_stream_arrives_as_it_is_sent_and_a_body_left_unread_closes_its_connection() -> None:
    go_on = asyncio.Event()

    async def watch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b'{"type": "ADDED"}\n{"ty', b'pe": "MODIFIED"}\n'):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
                await go_on.wait()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    server = Server(watch)
    async with server as url, client(url) as http:
        async with http.stream("GET", "/w") as resp:
            lines = resp.aiter_lines()
            go_on.set()
            assert await lines.__anext__() == '{"type": "ADDED"}'  # the second line is split over two chunks
            assert await lines.__anext__() == '{"type": "MODIFIED"}'
            assert [line async for line in lines] == []  # read to its end: the connection is kept
        go_on.clear()
        async with http.stream("GET", "/w") as resp:  # on the same connection, left before its end: closed
            assert resp.status_code == 200
        go_on.set()
        async with http.stream("GET", "/w") as resp:  # so this one opens a new connection
            assert [line async for line in resp.aiter_lines()] == ['{"type": "ADDED"}', '{"type": "MODIFIED"}']
    assert server.connections == 2


async def test_the_pool_bounds_the_connections_open_at_once() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            await asyncio.sleep(0.05)
            writer.write(answer(b"{}"))
            await writer.drain()

    server = Server(slow)
    async with server as url, client(url, max_connections=2) as http:
        answers = await asyncio.gather(*(http.get("/x") for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert server.most_open == 2 and server.connections == 2


async def test_a_kept_alive_connection_the_server_closed_is_not_used_again() -> None:
    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await read_request(reader) is not None:
            writer.write(answer(b"{}"))
            await writer.drain()
        # then the server closes the connection

    server = Server(one_answer)
    async with server as url, client(url) as http:
        assert (await http.get("/a")).status_code == 200
        await asyncio.sleep(0.1)  # the server's close reaches the idle connection
        assert (await http.get("/b")).status_code == 200
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", b"garbage\r\n\r\n", b"", b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20000],
    ids=["short-body", "not-http", "nothing", "endless-headers"],
)
async def test_broken_answers_are_transport_errors(reply: bytes) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    async with Server(broken) as url:
        kube = KubeClient.__new__(KubeClient)  # the client's error mapping around this transport
        kube._http = client(url)
        kube.limiter = type("NoLimit", (), {"wait": staticmethod(_nothing)})()
        kube.stats = __import__("collections").Counter()
        with pytest.raises(TransportError):
            await asyncio.wait_for(kube.request("GET", "/x"), 10)
        await kube._http.aclose()


async def _nothing() -> None:
    return None


async def test_timeouts_and_refusals_are_httpx_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with Server(silent) as url, client(url) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/x", timeout=httpx.Timeout(5, read=0.2))
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    async with client(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/x")


async def test_a_body_is_sent_with_its_length() -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request)
            writer.write(answer(b"{}"))
            await writer.drain()

    async with Server(record) as url, client(url) as http:
        await http.patch("/p", content=b'{"status": {}}', headers={"Content-Type": "application/merge-patch+json"})
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert head.startswith(b"PATCH /p HTTP/1.1\r\n") and b"content-length: 14" in head.lower() and body == b'{"status": {}}'

