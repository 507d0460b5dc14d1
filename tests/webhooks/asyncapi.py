"""An asyncio client for the test control plane, so that a test, the webhook server it runs and the apiserver
calling that server can share one event loop (the fixture's own client blocks). It is a ``KubeClient`` whose
``request`` goes over its own connections, so the webhooks use it as their client; ``impersonate`` makes every call
as a ServiceAccount, to run code with exactly the permissions the manifests grant."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ironlb.kube.client import ApiError
from tests.support.controlplane import ControlPlane, Response
from tests.support.requestclient import RequestClient


class AsyncApi(RequestClient):
    def __init__(self, cp: ControlPlane, *, impersonate: str | None = None) -> None:
        super().__init__()
        self.cp = cp
        self.headers: dict[str, str] = {}
        self.groups: list[str] = []
        if impersonate:
            ns = impersonate.split(":")[2]
            self.headers["Impersonate-User"] = impersonate
            self.groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]

    async def call(self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None,
                   content_type: str = "application/json") -> Response:
        """One request (its own connection); the Response with status, decoded body and headers. A 429 (a custom
        resource's storage initializing right after a CRD change) is retried after its Retry-After, as clients do."""
        for _ in range(20):
            resp = await self._call(method, path, params=params, body=body, content_type=content_type)
            if resp.status != 429:
                break
            await asyncio.sleep(min(float(resp.headers.get("Retry-After") or 1), 1.0))
        return resp

    async def _call(self, method: str, path: str, *, params: Mapping[str, str] | None, body: Any,
                    content_type: str) -> Response:
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        data = b"" if body is None else json.dumps(body).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.cp.port, ssl=self.cp.ssl_context(),
                                                       server_hostname="127.0.0.1")
        try:
            head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json", "Connection: close",
                    f"Content-Length: {len(data)}"]
            if body is not None:
                head.append(f"Content-Type: {content_type}")
            head += [f"{k}: {v}" for k, v in self.headers.items()]
            head += [f"Impersonate-Group: {g}" for g in self.groups]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), 60)
        finally:
            writer.close()
        head_bytes, _, payload = raw.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip()
            headers[k] = f"{headers[k]}, {v.strip()}" if k in headers else v.strip()
        if any(k.lower() == "transfer-encoding" and "chunked" in v for k, v in headers.items()):
            payload = _dechunk(payload)
        decoded: Any = json.loads(payload) if payload else None
        return Response(status, decoded, headers)

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None,
                      content_type: str = "application/json", verb: str | None = None,
                      timeout: float | None = None) -> Any:
        resp = await self.call(method, path, params=params, body=body, content_type=content_type)
        if resp.status >= 400:
            raise ApiError(method, path, resp.status, resp.body)
        return resp.body


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            return bytes(out)
        out += rest[:size]
        data = rest[size + 2:]
