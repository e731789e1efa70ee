"""Composition roots for running services: all in one process, or each alone.

``chase serve`` runs auth, persistence and gateway in one process sharing one engine and one
bus: on the embedded default that bus is in-process and the store is SQLite, so one command is
the whole system. With ``CHASE_AMQP_URL`` and ``CHASE_DATABASE_URL`` set, ``chase auth``,
``chase persistence`` and ``chase gateway`` each run alone against RabbitMQ and MySQL.

Any of them serves its process's metrics over HTTPS on ``CHASE_METRICS_PORT`` when that is set
(see ``chase.metrics``); never on the public auth port.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from prometheus_client import start_http_server
from sqlalchemy.ext.asyncio import AsyncEngine

from chase.bus import Bus
from chase.bus.factory import create_bus
from chase.config import CommonSettings, ConfigError
from chase.logging import get_logger
from chase.probes import bus_check, database_check, flag_check, open_probes
from chase.store import migrate
from chase.store.engine import check_reachable, create_engine, ensure_database
from chase.tls import ensure_dev_certs, require_readable

if TYPE_CHECKING:
    from services.auth.service import AuthService
    from services.gateway.server import TokenChecker
    from services.gateway.settings import GatewaySettings

log = get_logger("chase.serve")


@asynccontextmanager
async def open_engine(
    settings: CommonSettings, *, upgrade: bool, idle_transaction_timeout: float | None = None
) -> AsyncIterator[AsyncEngine]:
    """An engine that answers (else :class:`ConfigError`), migrated to head when ``upgrade``
    (a missing MySQL database is then created first). ``idle_transaction_timeout``: see
    :func:`chase.store.engine.create_engine`."""
    if upgrade:
        created = await ensure_database(settings.database_url)
        if created:
            log.info(created)
    engine = create_engine(
        settings.database_url,
        connect_timeout=settings.database_connect_timeout_seconds,
        statement_timeout=settings.database_statement_timeout_seconds,
        idle_transaction_timeout=idle_transaction_timeout,
    )
    try:
        await check_reachable(engine)
        if upgrade:
            await migrate.upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def open_bus(settings: CommonSettings) -> AsyncIterator[Bus]:
    bus = create_bus(
        settings.amqp_url,
        settings.bus_namespace,
        heartbeat=settings.amqp_heartbeat_seconds,
        reconnect_interval=settings.amqp_reconnect_seconds,
    )
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


@asynccontextmanager
async def open_metrics(settings: CommonSettings) -> AsyncIterator[int | None]:
    """Serve the process's metrics over HTTPS on ``CHASE_METRICS_PORT`` while inside; yields
    the port, or None when the setting is 0 (off).

    Raises :class:`ConfigError` when the server certificate is missing or the port is taken.
    """
    host, port = settings.metrics_host, settings.metrics_port
    if not port:
        yield None
        return
    cert, key = settings.server_cert_path, settings.server_key_path
    require_readable(cert, key)
    try:
        # prometheus-client's own server, on a thread of its own: a scrape never waits for the
        # event loop, and a busy event loop never delays a scrape.
        server, thread = start_http_server(
            port, host, certfile=str(cert), keyfile=str(key), tls_min_version=ssl.TLSVersion.TLSv1_2
        )
    except OSError as exc:
        raise ConfigError(
            f"CHASE_METRICS_HOST / CHASE_METRICS_PORT: cannot listen on {host}:{port} ({exc.strerror or exc})"
        ) from None
    log.info("metrics served", url=f"https://{host}:{port}/metrics")
    try:
        yield port
    finally:
        await asyncio.to_thread(server.shutdown)  # waits up to its 0.5 s poll interval
        server.server_close()
        thread.join()


def ensure_certs(settings: CommonSettings) -> None:
    """Make the dev certificates when the default ones are in use and missing."""
    if settings.tls_cert is None and settings.tls_key is None:
        if ensure_dev_certs(settings.certs_dir):
            log.info("made development certificates", directory=str(settings.certs_dir))


def require_broker(settings: CommonSettings, service: str) -> None:
    if settings.embedded:
        raise ConfigError(
            f"CHASE_AMQP_URL: `chase {service}` alone needs RabbitMQ to reach the other services; "
            "set CHASE_AMQP_URL, or run everything in one process with `chase serve`"
        )


async def serve_all() -> None:
    """Auth, persistence and gateway in one process, until cancelled."""
    from chase.config import load
    from services.auth.app import create_service
    from services.auth.settings import AuthSettings
    from services.gateway.settings import GatewaySettings
    from services.persistence.settings import PersistenceSettings

    auth_settings = load(AuthSettings)
    gateway_settings = load(GatewaySettings)
    persistence_settings = load(PersistenceSettings)
    ensure_certs(auth_settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(open_metrics(auth_settings))
        engine = await stack.enter_async_context(open_engine(auth_settings, upgrade=True))
        bus = await stack.enter_async_context(open_bus(auth_settings))
        await stack.enter_async_context(
            open_probes(auth_settings, {"broker": bus_check(bus), "database": database_check(engine)})
        )
        auth = create_service(auth_settings, engine=engine, bus=bus)
        await _run_together(
            lambda: _run_persistence(persistence_settings, engine, bus),
            lambda: _run_auth(auth_settings, engine, bus, auth),
            lambda: _run_gateway(gateway_settings, bus, tokens=token_checker(gateway_settings, auth)),
        )


def token_checker(gateway_settings: GatewaySettings, auth: AuthService) -> TokenChecker | None:
    """How ``chase serve``'s gateway checks tokens: with the auth service of the same process,
    called in-process (no HTTPS request to itself per connect), unless
    ``CHASE_GATEWAY_AUTH_URL`` is set (None: the gateway asks that URL)."""
    from services.auth.inprocess import InProcessTokenChecker

    if "auth_url" in gateway_settings.model_fields_set:
        return None
    return InProcessTokenChecker(auth)


async def serve_auth() -> None:
    from chase.config import load
    from services.auth.settings import AuthSettings

    settings = load(AuthSettings)
    require_broker(settings, "auth")
    async with open_metrics(settings), open_engine(settings, upgrade=False) as engine, open_bus(settings) as bus:
        async with open_probes(settings, {"broker": bus_check(bus), "database": database_check(engine)}):
            await _run_auth(settings, engine, bus)


async def serve_persistence() -> None:
    from chase.config import load
    from services.persistence.settings import PersistenceSettings

    settings = load(PersistenceSettings)
    require_broker(settings, "persistence")
    # A worker frozen inside a batch's transaction holds the writer lease's row lock: the
    # server ends that transaction once its lease has run out, so the standby is not kept
    # waiting longer for the lock than for the lease.
    engine_ready = open_engine(settings, upgrade=False, idle_transaction_timeout=settings.lease_seconds)
    async with open_metrics(settings), engine_ready as engine, open_bus(settings) as bus:
        async with open_probes(settings, {"broker": bus_check(bus), "database": database_check(engine)}):
            await _run_persistence(settings, engine, bus)


async def serve_gateway() -> None:
    from chase.config import load
    from services.gateway.settings import GatewaySettings

    settings = load(GatewaySettings)
    require_broker(settings, "gateway")
    require_readable(settings.server_cert_path, settings.server_key_path)
    draining = asyncio.Event()
    async with open_metrics(settings), open_bus(settings) as bus, open_probes(settings, {
        "broker": bus_check(bus),
        "accepting": flag_check(lambda: not draining.is_set(), "shutting down"),
    }):
        await _run_gateway(settings, bus, draining)


async def _run_auth(settings, engine: AsyncEngine, bus: Bus, service: AuthService | None = None) -> None:  # noqa: ANN001
    from services.auth import main

    await main.run(settings, engine=engine, bus=bus, service=service)


async def _run_persistence(settings, engine: AsyncEngine, bus: Bus) -> None:  # noqa: ANN001
    from services.persistence import main

    await main.run(settings, engine=engine, bus=bus)


async def _run_gateway(
    settings, bus: Bus, draining: asyncio.Event | None = None, *, tokens: TokenChecker | None = None  # noqa: ANN001
) -> None:
    from services.gateway import main

    await main.run(settings, bus=bus, auth=tokens, draining=draining)


async def _run_together(*starters: Callable[[], Awaitable[None]]) -> None:
    """Run services side by side; when one stops or fails, stop the others."""
    tasks = [asyncio.create_task(start()) for start in starters]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # re-raise the failure that stopped us
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
