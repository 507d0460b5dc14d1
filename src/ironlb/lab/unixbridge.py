"""A byte-for-byte TCP/Unix-socket forwarder, so lab nodes in network namespaces reach the host's loopback (the
Kubernetes lab of ``make demo-k8s`` runs it; so do the speaker tests and benchmark).

A network namespace cannot reach the host's 127.0.0.1, and the labs must not add interfaces to the host
namespace; a Unix socket, however, lives in the filesystem and is shared by all namespaces. So the host side
listens on a Unix socket and forwards to ``127.0.0.1:<apiserver port>``, and each node namespace listens on its
own ``127.0.0.1:<same port>`` and forwards to that socket. TLS passes through untouched: the apiserver's serving
certificate names 127.0.0.1, so one kubeconfig works in every namespace::

    python -m ironlb.lab.unixbridge --listen unix:/tmp/x/api.sock --connect tcp:127.0.0.1:6443      # host
    ip netns exec NS python -m ironlb.lab.unixbridge --listen tcp:127.0.0.1:6443 --connect unix:/tmp/x/api.sock

It prints ``ready`` on stdout once listening, and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

CHUNK = 65536
CONNECT_TIMEOUT = 10.0


async def _connect(target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, _, rest = target.partition(":")
    async with asyncio.timeout(CONNECT_TIMEOUT):
        if kind == "unix":
            return await asyncio.open_unix_connection(rest)
        host, _, port = rest.rpartition(":")
        return await asyncio.open_connection(host.strip("[]"), int(port))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF (or an error), then half-close the other side."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 5)


class Bridge:
    """Forwards connections to ``target``; :meth:`abort_all` cuts the open ones (as a dead apiserver would)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await _connect(self.target)
            except (OSError, TimeoutError):
                await _close(writer)
                return
            self._open.update((writer, up_writer))
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                self._open.difference_update((writer, up_writer))
                await _close(up_writer)
                await _close(writer)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def abort_all(self, timeout: float = 5.0) -> None:
        """Reset every open connection and wait (bounded) for the handlers to finish."""
        for writer in list(self._open):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)


async def serve(listen: str, connect: str, stop: asyncio.Event) -> None:
    """Forward every connection to ``listen`` to ``connect`` until ``stop`` is set."""
    kind, _, rest = listen.partition(":")
    bridge = Bridge(connect)
    if kind == "unix":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(rest)
        server = await asyncio.start_unix_server(bridge.handle, rest)
    else:
        host, _, port = rest.rpartition(":")
        server = await asyncio.start_server(bridge.handle, host.strip("[]"), int(port))
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await bridge.abort_all()
        if kind == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(rest)


async def _main(listen: str, connect: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(listen, connect, stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ironlb.lab.unixbridge", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True, help="tcp:HOST:PORT or unix:PATH")
    parser.add_argument("--connect", required=True, help="tcp:HOST:PORT or unix:PATH")
    args = parser.parse_args(argv)
    for spec in (args.listen, args.connect):
        if not spec.startswith(("tcp:", "unix:")):
            parser.error(f"{spec}: expected tcp:HOST:PORT or unix:PATH")
    asyncio.run(_main(args.listen, args.connect))
    return 0


if __name__ == "__main__":
    sys.exit(main())
