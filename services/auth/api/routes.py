"""The endpoints under ``/api/v1`` and ``/healthz``. Each only translates HTTP to a use case.

Metrics are not served here: the public port is no place for them. ``CHASE_METRICS_PORT``
serves them (``chase.serve.open_metrics``) on an internal address."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.responses import JSONResponse

from chase.schemas import MAX_ID
from services.auth.api.deps import (
    ClientAddress,
    CurrentSession,
    Engine,
    Service,
    Settings,
    UserAgentDevice,
    require_json,
)
from services.auth.errors import ErrorResponse, NotFound
from services.auth.models import (
    Health,
    LoginRequest,
    PasswordChange,
    SessionCreated,
    SessionInfo,
    SessionList,
    UserCreate,
    UserPage,
    UserPublic,
)

_ERR = {"model": ErrorResponse}
_BAD_INPUT = {400: _ERR, 415: _ERR, 422: _ERR}
_NEEDS_TOKEN = {401: _ERR}

api = APIRouter(prefix="/api/v1")
health = APIRouter()


@api.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    dependencies=[Depends(require_json)],
    responses={**_BAD_INPUT, 409: _ERR},
    tags=["users"],
)
async def register(body: UserCreate, service: Service) -> UserPublic:
    """Register a user. 409 ``username_taken`` when the name exists in any letter case."""
    return await service.register(body)


@api.get("/users/me", response_model=UserPublic, responses=_NEEDS_TOKEN, tags=["users"])
async def me(session: CurrentSession, service: Service) -> UserPublic:
    return await service.get_user(session.user.id)


@api.get("/users", response_model=UserPage, responses={**_NEEDS_TOKEN, 422: _ERR}, tags=["users"])
async def directory(
    _: CurrentSession,
    service: Service,
    settings: Settings,
    after_id: Annotated[
        int, Query(ge=0, le=MAX_ID, description="Last id of the previous page; 0 for the first")
    ] = 0,
    limit: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Page size; capped by the server")] = None,
) -> UserPage:
    """Users by ascending id, for the sidebar. Page on with ``after_id=next_after_id``."""
    wanted = limit or settings.directory_page_default
    return await service.directory(after_id, min(wanted, settings.directory_page_max))


@api.post(
    "/sessions",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionCreated,
    dependencies=[Depends(require_json)],
    responses={**_BAD_INPUT, 401: _ERR, 429: _ERR},
    tags=["sessions"],
)
async def login(
    body: LoginRequest, service: Service, address: ClientAddress, user_agent: UserAgentDevice
) -> SessionCreated:
    """Log in. 401 ``invalid_credentials`` for an unknown name and a wrong password alike;
    429 ``too_many_attempts`` (with Retry-After) while this client, this name, or the two
    together have failed too often: each failure past a few free ones makes the next attempt
    wait longer (1 s, doubling; at most 30 s for a name tried from many places)."""
    return await service.login(body, address=address, device=body.device or user_agent)


@api.get("/sessions/current", response_model=SessionInfo, responses=_NEEDS_TOKEN, tags=["sessions"])
async def current_session(session: CurrentSession) -> SessionInfo:
    """The token check other services call: 200 with the session, or 401 ``invalid_token``."""
    return session


@api.delete(
    "/sessions/current", status_code=status.HTTP_204_NO_CONTENT, responses=_NEEDS_TOKEN, tags=["sessions"]
)
async def logout(session: CurrentSession, service: Service) -> Response:
    """Log out: the token is dead at once and the user's gateways drop this session."""
    await service.logout(session)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api.get("/sessions", response_model=SessionList, responses=_NEEDS_TOKEN, tags=["sessions"])
async def list_sessions(session: CurrentSession, service: Service) -> SessionList:
    """Your live sessions: device, created, last seen (to the minute); ``current`` is this one."""
    return await service.sessions(session)


@api.delete("/sessions", status_code=status.HTTP_204_NO_CONTENT, responses=_NEEDS_TOKEN, tags=["sessions"])
async def logout_everywhere(session: CurrentSession, service: Service) -> Response:
    """Log out everywhere: every session of yours ends, this one included, and every gateway
    closes their connections (4401 ``session revoked``)."""
    await service.revoke(session.user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NEEDS_TOKEN, 404: _ERR, 422: _ERR},
    tags=["sessions"],
)
async def revoke_session(
    session: CurrentSession,
    service: Service,
    session_id: Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")],
) -> Response:
    """End one of your sessions (a lost phone); 404 ``not_found`` if it is not a live one of yours."""
    if not await service.revoke(session.user.id, only=session_id):
        raise NotFound()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api.put(
    "/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_json)],
    responses={**_BAD_INPUT, **_NEEDS_TOKEN, 403: _ERR, 429: _ERR},
    tags=["users"],
)
async def change_password(
    body: PasswordChange, session: CurrentSession, service: Service, address: ClientAddress
) -> Response:
    """Change your password: the current one is required (403 ``invalid_credentials`` if
    wrong, throttled like a login); every other session of yours ends, this one stays."""
    await service.change_password(session, body, address=address)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@health.get("/healthz", response_model=Health, responses={503: {"model": Health}}, tags=["health"])
async def healthz(engine: Engine) -> Health | JSONResponse:
    """200 when the database answers, 503 otherwise (for load balancers and compose)."""
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception:  # noqa: BLE001 - whatever the driver raises, the answer is "not healthy"
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return Health(status="ok")
