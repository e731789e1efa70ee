"""Keeping a link to the gateway up: open it, read it, and reopen it with backoff.

:meth:`Connection.open` is one attempt: connect, then wait for the gateway's hello.
:meth:`Connection.keep` hands each link to the caller's ``serve`` until it drops, then
reconnects with the :class:`~client.core.backoff.BackoffPolicy`: RECONNECTING for the fast
attempts, then OFFLINE with slow attempts for ever (``next_attempt_at`` says when the next one
comes). :meth:`Connection.retry` (the user sends, or clicks Retry) cuts any wait short and starts
a new round of fast attempts. It returns when the token is refused (OFFLINE, then
:class:`SessionEnded`) or on an internal error (OFFLINE); the caller stops it by cancelling it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import ValidationError

from chase.logging import get_logger
from chase.schemas import ErrorFrame, HelloFrame, decode_server_frame
from client.core.backoff import BackoffPolicy, Sleep
from client.core.errors import ClientError, ServerUnreachable, SessionExpired
from client.core.events import ClientState, EventHub, SessionEnded
from client.core.transport import CLOSE_UNAUTHORIZED, Connector, Link, LinkClosed

log = get_logger(__name__)

#: Serves one open link until it drops (returns) or the token is refused (SessionExpired).
Serve = Callable[[Link, HelloFrame], Awaitable[None]]


class SetState(Protocol):
    def __call__(self, state: ClientState, /, **details: object) -> None: ...


def decode(raw: str) -> object | None:
    """The server frame in ``raw``, or None for one this client does not know (skip it)."""
    try:
        return decode_server_frame(raw)
    except ValidationError as exc:
        # A newer server may send frames this client does not know: skip them, never crash.
        log.warning("client.unknown_frame", error_count=exc.error_count(), size=len(raw))
        return None


async def read_frames(link: Link, on_frame: Callable[[object], None]) -> None:
    """Hand every frame read from ``link`` to ``on_frame``; return when the link closes.

    Raises SessionExpired when the gateway closed it because the token is no longer valid.
    """
    while True:
        try:
            raw = await link.recv()
        except LinkClosed as closed:
            if closed.code == CLOSE_UNAUTHORIZED:
                raise SessionExpired(closed.reason or "the session has ended: please log in again") from None
            log.info("client.link_closed", code=closed.code)
            return
        frame = decode(raw)
        if frame is not None:
            on_frame(frame)


class Connection:
    def __init__(self, connector: Connector, token: str, *, policy: BackoffPolicy, sleep: Sleep,
                 timeout: float, set_state: SetState, hub: EventHub, clock: Callable[[], datetime]) -> None:
        self._connector = connector
        self._clock = clock
        #: When the next reconnect attempt is due (local time); None while connected or stopped.
        self.next_attempt_at: datetime | None = None
        self._token = token
        self._policy = policy
        self._sleep = sleep
        self._timeout = timeout
        self._set_state = set_state
        self._hub = hub
        self._retry = asyncio.Event()

    async def open(self) -> tuple[Link, HelloFrame]:
        """Connect and wait for the hello; the caller serves the link, then closes it.

        Raises SessionExpired (token refused), CertificateNotTrusted or ServerUnreachable.
        """
        link = await self._connector.connect(self._token)
        refusal = ""
        try:
            while True:
                async with asyncio.timeout(self._timeout):  # not wait_for: it can swallow a cancel (3.11)
                    frame = decode(await link.recv())
                if isinstance(frame, HelloFrame):
                    return link, frame
                if isinstance(frame, ErrorFrame):
                    refusal = frame.message
        except LinkClosed as closed:
            if closed.code == CLOSE_UNAUTHORIZED:
                raise SessionExpired(refusal or closed.reason or "the session has expired") from None
            raise ServerUnreachable(refusal or f"the gateway closed the connection ({closed.code})") from None
        except TimeoutError:
            await link.close()
            raise ServerUnreachable("the gateway did not greet the client in time") from None

    def retry(self) -> None:
        """While not connected: try now, and start a new round of fast attempts.

        Harmless while connected (the request is forgotten at the next connect).
        """
        self._retry.set()

    async def keep(self, link: Link, hello: HelloFrame, serve: Serve) -> None:
        """Serve ``link``, then every link reopened after it, until the session ends."""
        try:
            while True:
                await serve(link, hello)
                self._set_state(ClientState.RECONNECTING, reason="connection lost")
                link, hello = await self._reconnect()
        except SessionExpired as exc:
            self._set_state(ClientState.OFFLINE, reason=exc.message)
            self._hub.emit(SessionEnded(exc.message))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never die silently: say so, go offline
            log.exception("client.crashed")
            self._set_state(ClientState.OFFLINE, reason=f"internal error: {exc}")

    async def _reconnect(self) -> tuple[Link, HelloFrame]:
        attempt, reason = 0, "connection lost"
        while True:
            attempt += 1
            delay = self._policy.delay(attempt)
            self.next_attempt_at = self._clock() + timedelta(seconds=delay)
            state = ClientState.OFFLINE if self._policy.exhausted(attempt) else ClientState.RECONNECTING
            self._set_state(state, attempt=attempt, max_attempts=self._policy.max_attempts, delay=delay,
                            reason=reason, next_attempt_at=self.next_attempt_at)
            if await self._wait(delay):
                attempt = 0  # the user asked: try now, then a new round of fast attempts
                self._set_state(ClientState.RECONNECTING, attempt=1, max_attempts=self._policy.max_attempts,
                                delay=0.0, reason=reason, next_attempt_at=self._clock())
            try:
                link, hello = await self.open()
            except SessionExpired:
                self.next_attempt_at = None
                raise
            except ClientError as exc:
                reason = exc.message
                log.info("client.reconnect_failed", attempt=attempt, code=str(exc.code))
                continue
            self.next_attempt_at = None
            return link, hello

    async def _wait(self, delay: float) -> bool:
        """Wait ``delay`` seconds, or less when :meth:`retry` is called; True if it was."""
        if self._retry.is_set():
            self._retry.clear()
            return True
        sleeper = asyncio.ensure_future(self._sleep(delay))
        woken = asyncio.ensure_future(self._retry.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, woken):
                task.cancel()
            await asyncio.gather(sleeper, woken, return_exceptions=True)
        if self._retry.is_set():
            self._retry.clear()
            return True
        return False
