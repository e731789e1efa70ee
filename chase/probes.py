"""Liveness and readiness probes for orchestrators and load balancers.

``GET /healthz`` answers 200 while the process serves at all (restart it when it does not).
``GET /readyz`` answers 200 when every dependency the process needs is usable right now (the
broker connection, the database) and 503 with the failing ones otherwise (send it no traffic,
do not restart it). The body is ``{"status": "ok"|"unavailable", "checks": {name: "ok"|reason}}``.

A process serves them over plain HTTP on ``CHASE_HEALTH_PORT`` (0, the default, is off), bound
to ``CHASE_HEALTH_HOST``: they carry no secret and are meant for the container network, where
the compose health checks and HAProxy's checks call them. The auth service also answers
``/readyz`` on its HTTPS port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import sqlalchemy as sa
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chase.bus.port import Bus
from chase.config import CommonSettings, ConfigError
from chase.logging import get_logger

log = get_logger("chase.probes")

#: A check returns None when ready and a short reason when not; it may also raise.
Check = Callable[[], Awaitable[str | None]]
#: No check may hold a probe longer than this: an orchestrator's own timeout is a few seconds.
CHECK_TIMEOUT = 2.0


def bus_check(bus: Bus) -> Check:
    async def check() -> str | None:
        return None if bus.is_ready() else "broker connection down"

    return check


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> str | None:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return None

    return check


def flag_check(is_set: Callable[[], bool], reason: str) -> Check:
    """Ready while ``is_set()`` is true (e.g. "not draining")."""

    async def check() -> str | None:
        return None if is_set() else reason

    return check


async def readiness(checks: dict[str, Check], timeout: float = CHECK_TIMEOUT) -> tuple[bool, dict[str, str]]:
    """Run every check at once, each bounded by ``timeout`` seconds."""

    async def one(check: Check) -> str:
        try:
            reason = await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            return "timed out"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason is shown
            return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return reason or "ok"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    answers = dict(zip(names, results, strict=True))
    return all(a == "ok" for a in answers.values()), answers


def create_probe_app(checks: dict[str, Check]) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "checks": {}})

    async def readyz(_: Request) -> JSONResponse:
        ok, answers = await readiness(checks)
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": answers},
                            status_code=200 if ok else 503)

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz)])


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the process entry point owns the signals


@contextlib.asynccontextmanager
async def open_probes(settings: CommonSettings, checks: dict[str, Check]) -> AsyncIterator[int | None]:
    """Serve the probes on ``CHASE_HEALTH_PORT`` while inside; yields the port, or None when off.

    Raises :class:`ConfigError` when the port cannot be bound.
    """
    host, port = settings.health_host, settings.health_port
    if not port:
        yield None
        return
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                    reuse_port=False)
    except OSError as exc:
        raise ConfigError(
            f"CHASE_HEALTH_HOST / CHASE_HEALTH_PORT: cannot listen on {host}:{port} ({exc.strerror or exc})"
        ) from None
    config = uvicorn.Config(create_probe_app(checks), log_config=None, access_log=False, lifespan="off",
                            server_header=False, timeout_graceful_shutdown=1)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    log.info("probes served", url=f"http://{host}:{port}/readyz")
    try:
        yield port
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), 5)
        sock.close()
