"""FastAPI dependencies as ``Annotated`` aliases, so routes read like typed functions.

Everything comes from ``app.state``, filled by the composition root (``app.create_app``):
nothing here is global.
"""

from __future__ import annotations

import ipaddress
from email.message import Message
from functools import cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.auth.errors import MissingToken, UnsupportedMediaType
from services.auth.models import DEVICE_MAX_CHARS, SessionInfo
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


def _client_address(request: Request, settings: Settings) -> str:
    """The address a login is charged to: the peer, or, when the peer is one of
    ``CHASE_AUTH_TRUSTED_PROXIES``, the last address in X-Forwarded-For that is not a trusted
    proxy. A client that forges the header from anywhere else changes nothing."""
    peer = request.client.host if request.client else "unknown"
    trusted = trusted_networks(settings.trusted_proxies)
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [hop.strip() for hop in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop[:64]
    return peer


@cache
def trusted_networks(setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip())


def _in(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _device(request: Request) -> str | None:
    agent = request.headers.get("user-agent")
    if not agent:
        return None
    printable = "".join(c for c in agent if c.isprintable())[:DEVICE_MAX_CHARS].strip()
    return printable or None


#: The client address logins are throttled by.
ClientAddress = Annotated[str, Depends(_client_address)]
#: A device label for a new session when the client gave none (its User-Agent).
UserAgentDevice = Annotated[str | None, Depends(_device)]
