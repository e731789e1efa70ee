"""Fault injection for tests: a TCP forwarder that can cut, refuse, freeze or slow a link.

::

    async with TcpForwarder("127.0.0.1", 3306) as db:
        url = f"mysql+aiomysql://root@127.0.0.1:{db.port}/chase"   # talk through the forwarder
        ...
        await db.cut()       # every connection through it drops; new ones are refused
        await db.restore()   # connections go through again, on the same port
        await db.refuse()    # new connections are refused, open ones go on working
        db.freeze()          # nothing moves either way, nothing is closed (a hung server or a
                             # dead network path): new connections are accepted and hang too
        db.thaw()            # what was held back flows again
        db.latency = 0.2     # every chunk, either way, is held this long first

A cut looks to the client like the server died or the network went away: open connections are
reset (RST, not a polite close) and connecting fails with "connection refused". A freeze looks
like nothing at all: only the client's own timeouts can tell. The target itself is untouched,
so a test can fault a real MariaDB or RabbitMQ that others use without stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from types import TracebackType

_CHUNK = 64 * 1024


class TcpForwarder:
    """Listens on ``host``:``port`` (0: a free one) and forwards every connection to the target.

    ``await start()`` (or ``async with``), then read :attr:`port`; ``await close()`` when done.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        #: Connections accepted (and forwarded) so far: lets a test see that a client came back.
        self.accepted = 0
        #: Set while data flows; cleared by :meth:`freeze`.
        self.flowing = asyncio.Event()
        self.flowing.set()
        #: Seconds every chunk waits before it is passed on (either direction).
        self.latency = 0.0
        self._refusing = False

    @property
    def is_cut(self) -> bool:
        return self._server is None

    async def start(self) -> None:
        """Listen; after this :attr:`port` is the port clients must connect to."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Reset every open connection and refuse new ones until :meth:`restore`."""
        server, self._server = self._server, None
        if server is not None:
            server.close()  # stops listening: connecting is now refused
        links, self._links = self._links, set()
        for link in links:
            link.abort()
        await asyncio.gather(*(link.done() for link in links))
        if server is not None:
            await server.wait_closed()  # after the aborts: on newer Pythons it waits for them

    def go_stale(self) -> None:
        """Every open connection goes stale: the next bytes its client sends are dropped and the
        connection closed (FIN), as a server closing an idle keep-alive connection does when a
        request arrives on it at that very moment. New connections are forwarded as usual."""
        for link in self._links:
            link.stale = True

    async def restore(self) -> None:
        """Accept and forward connections again, on the same port (after a cut or a refuse)."""
        self._refusing = False
        if self._server is None:
            await self.start()

    async def refuse(self) -> None:
        """Refuse new connections (reset at once); the open ones keep working."""
        self._refusing = True

    def freeze(self) -> None:
        """Stop moving data, closing nothing: a server that hangs, a path that went dark."""
        self.flowing.clear()

    def thaw(self) -> None:
        """Let data flow again, what was held back first."""
        self.flowing.set()

    async def close(self) -> None:
        await self.cut()

    async def __aenter__(self) -> TcpForwarder:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            _reset(client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(client_writer)
            return
        if self.is_cut:  # cut while we were connecting upstream
            _reset(upstream_writer)
            _reset(client_writer)
            return
        self.accepted += 1
        link = _Link(self, client_reader, client_writer, upstream_reader, upstream_writer)
        self._links.add(link)
        try:
            await link.done()
        finally:
            self._links.discard(link)


class _Link:
    """One forwarded connection: two pumps, client to target and back."""

    def __init__(
        self,
        forwarder: TcpForwarder,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        self._writers = (client_writer, upstream_writer)
        #: Drop the client's next bytes and hang up (see TcpForwarder.go_stale).
        self.stale = False
        loop = asyncio.get_running_loop()
        self._pumps = (
            loop.create_task(_pump(forwarder, client_reader, upstream_writer, lambda: self.stale)),
            loop.create_task(_pump(forwarder, upstream_reader, client_writer)),
        )

    def abort(self) -> None:
        for writer in self._writers:
            _reset(writer)
        for pump in self._pumps:
            pump.cancel()

    async def done(self) -> None:
        """Wait until either side hung up (the other is then closed too) or the link was aborted."""
        await asyncio.wait(self._pumps, return_when=asyncio.FIRST_COMPLETED)
        for writer in self._writers:
            writer.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)


async def _pump(
    forwarder: TcpForwarder,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    stale: Callable[[], bool] = lambda: False,
) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(_CHUNK):
            if stale():
                return  # the link closes both sides
            if forwarder.latency > 0:
                await asyncio.sleep(forwarder.latency)
            await forwarder.flowing.wait()
            writer.write(data)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP reset, as a crashed server or a broken network would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger on, timeout 0: close() sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
