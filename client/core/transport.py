"""The connection port (open a link with a token; send and receive text) and its WebSocket adapter.

The chat client only sees :class:`Connector` and :class:`Link`, so its reconnect, outbox and
sync logic is unit-tested with an in-memory fake and integration-tested over real WSS.
"""

from __future__ import annotations

import abc
import ssl

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from client.core.endpoints import is_certificate_error
from client.core.errors import CertificateNotTrusted, ServerUnreachable, SessionExpired

#: The gateway's close code for a token that is invalid, expired or revoked.
CLOSE_UNAUTHORIZED = 4401


class LinkClosed(Exception):
    """The link is gone; ``code`` is the WebSocket close code when there was one."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"closed ({code}) {reason}".strip())
        self.code = code
        self.reason = reason


class Link(abc.ABC):
    @abc.abstractmethod
    async def send(self, text: str) -> None:
        """Send one frame; raises LinkClosed when the link is gone."""

    @abc.abstractmethod
    async def recv(self) -> str:
        """Wait for the next frame; raises LinkClosed when the link is gone."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close politely; safe to call twice."""


class Connector(abc.ABC):
    @abc.abstractmethod
    async def connect(self, token: str) -> Link:
        """Open a link authenticated by ``token``.

        Raises SessionExpired (token refused), CertificateNotTrusted, or ServerUnreachable.
        """


class WebSocketLink(Link):
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def recv(self) -> str:
        try:
            data = await self._ws.recv()
        except ConnectionClosed as exc:
            raise _closed(exc) from None
        return data if isinstance(data, str) else data.decode("utf-8", errors="replace")

    async def close(self) -> None:
        await self._ws.close()


class WebSocketConnector(Connector):
    def __init__(self, url: str, ssl_context: ssl.SSLContext, *, open_timeout: float = 10.0) -> None:
        self._url = url
        self._ssl = ssl_context
        self._open_timeout = open_timeout

    async def connect(self, token: str) -> Link:
        try:
            ws = await connect(
                self._url,
                ssl=self._ssl,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=self._open_timeout,
                # The gateway bounds frames itself; 4 MiB leaves room for a full page of history.
                max_size=4 * 1024 * 1024,
            )
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise SessionExpired("the server refused the session: please log in again") from None
            raise ServerUnreachable(f"the gateway answered HTTP {exc.response.status_code}") from None
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            if is_certificate_error(exc):
                raise CertificateNotTrusted(
                    "the gateway's certificate is not trusted (wrong CA file, or not the server you meant)"
                ) from None
            raise ServerUnreachable(f"cannot reach the gateway at {self._url}: {type(exc).__name__}") from None
        return WebSocketLink(ws)


def _closed(exc: ConnectionClosed) -> LinkClosed:
    frame = exc.rcvd
    return LinkClosed(frame.code if frame else None, frame.reason if frame else "")
