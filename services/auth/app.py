"""Composition root of the auth service: settings and adapters in, a FastAPI app out."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from chase.bus import Bus
from chase.clock import Clock, SecureTokens, SystemClock, TokenSource
from services.auth.api import handlers
from services.auth.api.devices import router as device_routes
from services.auth.api.probes import endpoints, probes
from services.auth.api.request_id import RequestIdMiddleware
from services.auth.api.rooms import rooms_api, rooms_create_api
from services.auth.api.routes import api, health
from services.auth.api.web import SecurityHeaders, install_docs
from services.auth.devices import DeviceService
from services.auth.errors import ErrorResponse
from services.auth.rooms import RoomsApi
from services.auth.security import PasswordHasher
from services.auth.service import AuthService
from services.auth.settings import AuthSettings
from services.auth.throttle import LoginThrottle, Policy, Scope


def create_app(
    settings: AuthSettings,
    *,
    engine: AsyncEngine,
    bus: Bus | None = None,
    clock: Clock | None = None,
    tokens: TokenSource | None = None,
    service: AuthService | None = None,
) -> FastAPI:
    """The auth API as an ASGI app.

    The caller owns ``engine`` and ``bus`` (started, migrated) and closes them after the app
    stops; with ``bus=None`` logouts are not broadcast to gateways. ``service``: the use cases,
    when the caller shares them (made with :func:`create_service` otherwise).
    """
    clock = clock or SystemClock()
    service = service or create_service(settings, engine=engine, bus=bus, clock=clock, tokens=tokens)
    app = FastAPI(
        title="ChaSe auth",
        version="1",
        # Swagger UI from our own files (web.install_docs); ReDoc only comes from a CDN.
        docs_url=None,
        redoc_url=None,
        description="Users and sessions for ChaSe. Errors are always "
        '`{"error": {"code", "message", "fields"?}}` with a stable `code`.',
        # The request limits (services/auth/limits.py) can answer any request before its route.
        responses={
            413: {"model": ErrorResponse, "description": "body_too_large: over CHASE_AUTH_MAX_BODY_BYTES"},
            503: {"model": ErrorResponse, "description": "unavailable: too many requests in progress"},
        },
    )
    app.state.settings = settings
    app.state.auth_service = service
    app.state.device_service = DeviceService(engine=engine, clock=clock)
    app.state.bus = bus
    handlers.install(app)
    app.state.rooms_api = RoomsApi(engine, bus, clock, tokens or SecureTokens())
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(api)
    app.include_router(rooms_api)
    app.include_router(device_routes)
    if bus is not None:
        # Rooms are made by the persistence worker, reached over the bus; without one (an auth
        # service alone) the API only lists them.
        app.include_router(rooms_create_api)
    app.include_router(endpoints)
    app.include_router(health)
    app.include_router(probes)
    install_docs(app)
    return app


def create_service(
    settings: AuthSettings,
    *,
    engine: AsyncEngine,
    bus: Bus | None = None,
    clock: Clock | None = None,
    tokens: TokenSource | None = None,
) -> AuthService:
    """The auth use cases from the settings (see :func:`create_app` for ``engine`` and ``bus``)."""
    return AuthService(
        engine=engine,
        hasher=PasswordHasher(settings.bcrypt_rounds),
        clock=clock or SystemClock(),
        tokens=tokens or SecureTokens(),
        throttle=LoginThrottle(engine, throttle_policy(settings)),
        session_ttl=timedelta(seconds=settings.session_ttl_seconds),
        checks_per_address=settings.login_checks_per_address,
        bus=bus,
    )


def throttle_policy(settings: AuthSettings) -> Policy:
    """The login throttle's three scopes from the settings (see ``throttle.py``)."""
    hour, quarter = 3600.0, 900.0
    return Policy(
        address=Scope("address", settings.login_free_failures_per_address, 1.0,
                      settings.login_address_delay_cap_seconds, hour),
        pair=Scope("pair", settings.login_free_failures_per_pair, 1.0, settings.login_address_delay_cap_seconds, hour),
        account=Scope("account", settings.login_free_failures_per_account, 1.0,
                      settings.login_account_delay_cap_seconds, quarter),
    )
