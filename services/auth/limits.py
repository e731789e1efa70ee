"""Resource limits of the auth HTTPS server, below the application.

- :func:`guarded_protocol`: uvicorn's h11 protocol with a deadline for every request's head
  (a connection that sends nothing, or its headers a byte at a time, is dropped after
  ``header_timeout`` seconds; uvicorn alone only times out *between* requests, and any byte
  resets that) and a cap on open connections (past it, a new connection is dropped at once).
- :class:`RequestLimits`: the outermost ASGI layer. A body larger than ``max_body_bytes`` is
  refused with 413 before it is read (``Content-Length``) or as soon as it grows past the
  limit (chunked), so a 100 MB body costs at most the limit in memory; a body that does not
  arrive within ``body_timeout`` is 408; past ``max_concurrent`` requests in progress, 503 with
  ``Retry-After``. Error bodies have the API's usual shape.

TLS handshakes are bounded by asyncio's own handshake timeout (60 s) before any of this runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from services.auth.errors import ErrorCode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def guarded_protocol(*, header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """An h11 protocol class for ``uvicorn.Config(http=...)`` with these two limits."""

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.abort()
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self._serving():
                self._disarm()  # a whole request head arrived: the app owns the time now

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request's head gets the same deadline

        def _serving(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            if not self._serving() and not self.transport.is_closing():
                self._deadline = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self._serving() and not self.transport.is_closing():
                # abort, not close: a client that sends nothing may read nothing either.
                self.transport.abort()

    return GuardedH11Protocol


class RequestLimits:
    """Wrap the app: body size and time, and requests in progress (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_concurrent: int, body_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.body_timeout = body_timeout
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is None or declared > self.max_body_bytes:
            await _refuse(send, 413, ErrorCode.BODY_TOO_LARGE, f"The body is larger than {self.max_body_bytes} bytes.")
            return
        if self.active >= self.max_concurrent:
            await _refuse(send, 503, ErrorCode.UNAVAILABLE, "The server is busy; try again shortly.", retry_after=1)
            return
        self.active += 1
        try:
            await self._serve(scope, receive, send)
        finally:
            self.active -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                refused = True
                await _refuse(send, 408, ErrorCode.REQUEST_TIMEOUT, f"The body did not arrive within {self.body_timeout:g} s.")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    refused = True
                    await _refuse(send, 413, ErrorCode.BODY_TOO_LARGE, f"The body is larger than {self.max_body_bytes} bytes.")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # we answered already; whatever the app says after is dropped
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length, 0 when none is declared, None when it is not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() and len(value) < 19 else None
    return 0


async def _refuse(send: Send, status: int, code: ErrorCode, message: str, *, retry_after: int | None = None) -> None:
    body = json.dumps({"error": {"code": str(code), "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
