"""Serve the auth API over HTTPS with uvicorn until cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from chase.bus import Bus
from chase.config import ConfigError
from chase.logging import get_logger
from chase.tls import require_readable
from services.auth.app import create_app
from services.auth.settings import AuthSettings

log = get_logger("chase.auth")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner and says where it listens."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process entry point owns SIGINT/SIGTERM and cancels us; in `chase serve` several
        # services share the process, so none of them may take the handlers over.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            config = self.config
            log.info("auth service listening", url=f"https://{config.host}:{config.port}/api/v1",
                     docs=f"https://{config.host}:{config.port}/docs")


async def run(settings: AuthSettings, *, engine: AsyncEngine, bus: Bus | None) -> None:
    """Serve until cancelled, then stop cleanly (open requests finish first).

    The caller owns ``engine`` and ``bus``. Raises :class:`ConfigError` when a TLS file is
    missing and ``SystemExit`` from uvicorn when the port cannot be bound.
    """
    require_readable(settings.server_cert_path, settings.server_key_path)
    config = uvicorn.Config(
        create_app(settings, engine=engine, bus=bus),
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.server_cert_path),
        ssl_keyfile=str(settings.server_key_path),
        log_config=None,  # chase.logging configures logging once for the whole process
        access_log=False,
        lifespan="off",
        server_header=False,
        # Idle keep-alive clients (a gateway's token checker) must not hold up a shutdown.
        timeout_graceful_shutdown=3,
    )
    server = _Server(config)
    task = asyncio.create_task(_serve(server, settings))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        await task
        raise


async def _serve(server: uvicorn.Server, settings: AuthSettings) -> None:
    try:
        await server.serve()
    except SystemExit:
        # uvicorn exits the process when it cannot bind; in a shared process that is not its call.
        raise ConfigError(
            f"CHASE_AUTH_HOST / CHASE_AUTH_PORT: cannot listen on {settings.host}:{settings.port} (in use?)"
        ) from None
