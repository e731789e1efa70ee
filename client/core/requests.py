"""Requests waiting for their reply frame, matched by ``request_id``."""

from __future__ import annotations

import asyncio
import uuid
from typing import TypeVar

from chase.schemas import ErrorFrame, HistoryFrame, SyncFrame, encode
from client.core.errors import ClientError, NotConnected, ProtocolFailure
from client.core.transport import Link, LinkClosed

T = TypeVar("T")


def new_request_id() -> str:
    return uuid.uuid4().hex


class PendingRequests:
    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[object]] = {}

    def open(self, request_id: str) -> asyncio.Future[object]:
        """Register a request; the caller sends it, then awaits the future (and calls close)."""
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = future
        return future

    def close(self, request_id: str) -> None:
        self._futures.pop(request_id, None)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._futures

    def resolve(self, request_id: str | None, reply: object) -> bool:
        """Hand ``reply`` to its request; False when nobody waits for it (a late answer)."""
        future = self._futures.get(request_id) if request_id else None
        if future is None or future.done():
            return False
        future.set_result(reply)
        return True

    def fail_all(self) -> None:
        """The connection dropped: every waiting request raises NotConnected."""
        for future in self._futures.values():
            if not future.done():
                future.set_exception(NotConnected("the connection dropped"))
        self._futures.clear()

    async def ask(self, link: Link | None, frame: HistoryFrame | SyncFrame, expect: type[T], timeout: float) -> T:
        """Send ``frame`` on ``link`` and return its reply; someone must :meth:`resolve` it.

        Raises NotConnected (no link, or it dropped meanwhile), ProtocolFailure (no answer in
        ``timeout`` seconds, or not an ``expect``) or ClientError (the server refused it).
        """
        if link is None:
            raise NotConnected("not connected to the server")
        assert frame.request_id is not None
        future = self.open(frame.request_id)
        try:
            await link.send(encode(frame))
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel (3.11)
                reply = await future
        except LinkClosed:
            raise NotConnected("the connection dropped") from None
        except TimeoutError:
            raise ProtocolFailure(f"no answer to {frame.type} in time") from None
        finally:
            self.close(frame.request_id)
        if isinstance(reply, ErrorFrame):
            raise ClientError(reply.message)
        if not isinstance(reply, expect):
            raise ProtocolFailure(f"unexpected answer to {frame.type}")
        return reply
