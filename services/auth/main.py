"""Serve the auth API over HTTPS with uvicorn until cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Iterator

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from chase.bus import Bus
from chase.config import ConfigError
from chase.logging import get_logger
from chase.rlimit import ensure_open_file_limit
from chase.tls import require_readable, server_context
from services.auth.app import create_app
from services.auth.limits import RequestLimits, guarded_protocol
from services.auth.service import AuthService
from services.auth.settings import AuthSettings

log = get_logger("chase.auth")

class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner, bounds TLS handshakes, and says where
    it listens."""

    #: Seconds a TLS handshake may take (asyncio's default is 60).
    handshake_timeout: float = 10.0

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process entry point owns SIGINT/SIGTERM and cancels us; in `chase serve` several
        # services share the process, so none of them may take the handlers over.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn has no setting for the TLS handshake timeout, so its one create_server call
        # gets it here: a socket that connects and never says hello is dropped after
        # handshake_timeout instead of asyncio's 60 s.
        loop = asyncio.get_running_loop()
        loop.create_server = functools.partial(  # type: ignore[method-assign]
            loop.create_server, ssl_handshake_timeout=self.handshake_timeout
        )
        try:
            await super().startup(sockets=sockets)
        finally:
            del loop.create_server  # the instance attribute: the class's method is back
        if self.started:
            config = self.config
            log.info("auth service listening", url=f"https://{config.host}:{config.port}/api/v1",
                     docs=f"https://{config.host}:{config.port}/docs")


async def run(
    settings: AuthSettings, *, engine: AsyncEngine, bus: Bus | None, service: AuthService | None = None
) -> None:
    """Serve until cancelled, then stop cleanly (open requests finish first).

    The caller owns ``engine`` and ``bus``; ``service`` is given when the caller shares the use
    cases (``chase serve``'s gateway checks tokens with them). Raises :class:`ConfigError` when a TLS file is
    missing and ``SystemExit`` from uvicorn when the port cannot be bound.
    """
    ensure_open_file_limit()
    require_readable(settings.server_cert_path, settings.server_key_path)
    api = create_app(settings, engine=engine, bus=bus, service=service)
    app = RequestLimits(
        api,
        max_body_bytes=settings.max_body_bytes,
        max_concurrent=settings.max_concurrent_requests,
        body_timeout=settings.body_timeout_seconds,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.server_cert_path),
        ssl_keyfile=str(settings.server_key_path),
        # The same TLS profile as every ChaSe server (chase.tls), not uvicorn's default.
        ssl_context_factory=lambda config, _default: server_context(
            settings.server_cert_path, settings.server_key_path
        ),
        http=guarded_protocol(header_timeout=settings.header_timeout_seconds, max_connections=settings.max_connections),
        # Longer than the pool expiry of our own client (services.auth.client), so a gateway's
        # pooled connection is dropped by the gateway first and never closed under a token check.
        timeout_keep_alive=int(settings.idle_timeout_seconds),
        # X-Forwarded-For is read by the login throttle itself, from trusted proxies only.
        proxy_headers=False,
        log_config=None,  # chase.logging configures logging once for the whole process
        access_log=False,
        lifespan="off",
        server_header=False,
        # Idle keep-alive clients (a gateway's token checker) must not hold up a shutdown.
        timeout_graceful_shutdown=3,
    )
    server = _Server(config)
    server.handshake_timeout = settings.header_timeout_seconds
    task = asyncio.create_task(_serve(server, settings))
    purger = asyncio.create_task(_purge_forever(api.state.auth_service, settings.purge_interval_seconds))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        await task
        raise
    finally:
        purger.cancel()
        await asyncio.gather(purger, return_exceptions=True)


async def _purge_forever(service: AuthService, interval: float) -> None:
    """Delete expired and revoked sessions and stale throttle rows, now and every ``interval``."""
    while True:
        try:
            removed = await service.purge()
        except Exception as exc:  # noqa: BLE001 - a database blip must not stop the server; next round
            log.warning("purge failed", error=type(exc).__name__)
        else:
            if removed:
                log.info("purged sessions and login counters", rows=removed)
        await asyncio.sleep(interval)


async def _serve(server: uvicorn.Server, settings: AuthSettings) -> None:
    try:
        await server.serve()
    except SystemExit:
        # uvicorn exits the process when it cannot bind; in a shared process that is not its call.
        raise ConfigError(
            f"CHASE_AUTH_HOST / CHASE_AUTH_PORT: cannot listen on {settings.host}:{settings.port} (in use?)"
        ) from None

