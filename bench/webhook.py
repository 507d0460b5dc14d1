"""The webhook server under large reviews: does the event loop stay free while they are decoded and validated?

Usage: ``.venv/bin/python bench/webhook.py [--requests 20] [--concurrency 4]``. No root. A WebhookServer (plain
HTTP on loopback) receives AdmissionReviews of an IPAddressPool carrying ~3 MiB of labels (the body cap) while a
ticker on the same loop wakes every 10 ms; the ticker's lateness is what the controller's other work (informers,
the Lease when it shares the loop) would see. Also sends a 10 MB review, which is refused (413) unread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

from ironlb.webhooks.server import MAX_BODY, WebhookServer

POOLS = "/validate-metallb-io-v1beta1-ipaddresspool"


def review(size: int) -> bytes:
    labels = {f"k{i:07d}": "v" * 40 for i in range(size // 60)}
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "big", "namespace": "metallb-system", "labels": labels},
            "spec": {"addresses": ["10.0.0.0/24"]}}  # fmt: skip
    doc = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "request": {"uid": "u", "kind": {"group": "metallb.io", "version": "v1beta1", "kind": "IPAddressPool"},
                       "operation": "CREATE", "name": "big", "namespace": "metallb-system", "object": pool}}
    return json.dumps(doc).encode()


async def post(port: int, body: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {POOLS} HTTP/1.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    if len(body) <= MAX_BODY:
        writer.write(body)
    await writer.drain()
    status = int((await reader.readuntil(b"\r\n")).split()[1])
    await reader.read()
    writer.close()
    return status, time.perf_counter() - started


async def main_async(requests: int, concurrency: int) -> None:
    async def no_objects(kind: str, namespace: str) -> list[dict[str, Any]]:
        return []

    server = WebhookServer(no_objects, host="127.0.0.1", port=0)
    await server.start()
    lateness: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lateness.append(time.perf_counter() - before - 0.01)

    body = review(MAX_BODY - 4096)
    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.5)
    idle = sorted(lateness)
    lateness.clear()
    slots = asyncio.Semaphore(concurrency)

    async def one() -> tuple[int, float]:
        async with slots:
            return await post(server.port, body)

    results = await asyncio.gather(*(one() for _ in range(requests)))
    stop.set()
    await tick
    huge_status, huge_time = await post(server.port, b"x" * (10 * 1024 * 1024))
    await server.close()
    busy = sorted(lateness)
    times = sorted(t for _, t in results)

    def p(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000

    print(f"review body {len(body) / 1024 / 1024:.2f} MiB, {requests} reviews, {concurrency} at a time; "
          f"statuses {sorted({s for s, _ in results})}")
    print(f"review latency: p50 {p(times, 0.5):.0f} ms, max {times[-1] * 1000:.0f} ms "
          f"(mean {statistics.mean(times) * 1000:.0f} ms)")
    print(f"loop lateness (10 ms ticker), idle: p99 {p(idle, 0.99):.1f} ms, max {idle[-1] * 1000:.1f} ms")
    print(f"loop lateness during the reviews: p50 {p(busy, 0.5):.1f} ms, p99 {p(busy, 0.99):.1f} ms, "
          f"max {busy[-1] * 1000:.1f} ms ({len(busy)} ticks)")
    print(f"10 MiB review: HTTP {huge_status} in {huge_time * 1000:.0f} ms (unread)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    print(f"ironlb webhook benchmark, {platform.machine()}, Python {platform.python_version()}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    asyncio.run(main_async(args.requests, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
