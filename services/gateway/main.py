"""Composition root of one gateway: run it until cancelled."""

from __future__ import annotations

import asyncio

from chase.bus.port import Bus
from chase.rlimit import ensure_open_file_limit
from services.auth.client import AuthClient
from services.gateway.server import GatewayServer, TokenChecker
from services.gateway.settings import GatewaySettings


async def run(
    settings: GatewaySettings,
    *,
    bus: Bus,
    auth: TokenChecker | None = None,
    started: asyncio.Event | None = None,
    draining: asyncio.Event | None = None,
) -> None:
    """Serve WebSocket clients over TLS until cancelled, then close them with 1001.

    The caller owns (starts, closes) ``bus``. Without ``auth`` the gateway asks the auth
    service at ``settings.auth_url``, trusting ``settings.ca_path``. ``started`` is set once
    the port listens; ``draining`` is set the moment the shutdown begins (readiness turns
    503 then, so a balancer sends no new connections while the clients are closed with 1001).
    """
    # Every client is a socket: the limit must allow max_connections of them (warned if not).
    ensure_open_file_limit(settings.max_connections)
    own_auth = None
    if auth is None:
        own_auth = auth = AuthClient(settings.auth_url, ca_path=settings.ca_path)
    server = GatewayServer(settings, bus=bus, auth=auth)
    try:
        await server.start()
        if started is not None:
            started.set()
        await asyncio.Event().wait()
    finally:
        if draining is not None:
            draining.set()
        # Shielded so that a cancelled run() still closes its clients and leaves the bus tidy.
        await asyncio.shield(_shutdown(server, own_auth))


async def _shutdown(server: GatewayServer, own_auth: AuthClient | None) -> None:
    try:
        await server.stop()
    finally:
        if own_auth is not None:
            await own_auth.aclose()
