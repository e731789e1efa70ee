"""FastAPI dependencies as ``Annotated`` aliases, so routes read like typed functions.

Everything comes from ``app.state``, filled by the composition root (``app.create_app``):
nothing here is global.
"""

from __future__ import annotations

from email.message import Message
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.auth.errors import MissingToken, UnsupportedMediaType
from services.auth.models import SessionInfo
from services.auth.service import AuthService
from services.auth.settings import AuthSettings

# auto_error=False: a missing token gets our own error body, not FastAPI's.
_bearer = HTTPBearer(auto_error=False, description="The token from POST /api/v1/sessions")


def _service(request: Request) -> AuthService:
    return request.app.state.auth_service


def _settings(request: Request) -> AuthSettings:
    return request.app.state.settings


def _engine(request: Request) -> AsyncEngine:
    return request.app.state.auth_service.engine


Service = Annotated[AuthService, Depends(_service)]
Settings = Annotated[AuthSettings, Depends(_settings)]
Engine = Annotated[AsyncEngine, Depends(_engine)]


async def _current_session(
    service: Service, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> SessionInfo:
    if credentials is None:
        raise MissingToken()
    return await service.check_token(credentials.credentials)


#: The live session of the bearer token; 401 when there is none.
CurrentSession = Annotated[SessionInfo, Depends(_current_session)]


def require_json(request: Request) -> None:
    """Refuse a body that is not declared as JSON (415) before anyone tries to parse it."""
    header = request.headers.get("content-type")
    if header is None:
        raise UnsupportedMediaType()
    parsed = Message()
    parsed["content-type"] = header
    subtype = parsed.get_content_subtype()
    if parsed.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise UnsupportedMediaType()
