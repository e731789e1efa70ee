"""The auth service's HTTP API, as the client sees it: register, log in, log out, directory.

Every failure becomes a :mod:`client.core.errors` exception; nothing from httpx leaks out.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from chase import passwords
from chase.schemas import UserRef
from client.core.endpoints import is_certificate_error
from client.core.errors import (
    CertificateNotTrusted,
    ClientError,
    InvalidCredentials,
    InvalidInput,
    ProtocolFailure,
    ServerUnreachable,
    SessionExpired,
    TooManyAttempts,
    UsernameTaken,
)

API = "/api/v1"


class _Reply(BaseModel):
    # A tolerant reader: the server may add fields without breaking older clients.
    model_config = ConfigDict(extra="ignore")


class _UserReply(_Reply):
    id: int
    username: str

    def user(self) -> UserRef:
        return UserRef(id=self.id, username=self.username)


class _SessionReply(_Reply):
    token: str
    session_id: str
    expires_at: datetime
    user: UserRef


class _UsersReply(_Reply):
    users: list[UserRef]
    next_after_id: int | None = None


class _EndpointsReply(_Reply):
    gateway_url: str


class _ErrorDetail(_Reply):
    code: str = "error"
    message: str = ""
    fields: Any = None


class _ErrorReply(_Reply):
    error: _ErrorDetail


class _SessionItem(_Reply):
    session_id: str
    device: str | None = None
    created_at: datetime
    last_seen_at: datetime | None = None
    expires_at: datetime
    current: bool = False


class _SessionsReply(_Reply):
    sessions: list[_SessionItem]


@dataclass(frozen=True)
class SessionView:
    """One of the user's sessions, as the server lists them. ``device`` is text another
    program chose: render it with care (``client.terminal``)."""

    session_id: str
    device: str | None
    created_at: datetime
    last_seen_at: datetime | None
    expires_at: datetime
    current: bool


@dataclass(frozen=True)
class AuthSession:
    """A logged-in session. ``token`` is a secret: never log or store it."""

    token: str = field(repr=False)
    session_id: str
    user: UserRef
    expires_at: datetime


@dataclass(frozen=True)
class UserPage:
    users: list[UserRef]
    #: Pass as ``after_id`` to get the next page; None when this was the last one.
    next_after_id: int | None


class AuthApi:
    def __init__(self, base_url: str, ssl_context: ssl.SSLContext, *, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/") + API, verify=ssl_context,
                                       timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def register(self, username: str, password: str) -> UserRef:
        """Create an account; the caller then logs in with :meth:`login`.

        The password rule is checked here first (the server's own, from ``chase.passwords``),
        so a refused password never leaves the machine."""
        problem = passwords.problem(password, username)
        if problem is not None:
            raise InvalidInput(problem.message, {"password": problem.message})
        response = await self._call("POST", "/users", json={"username": username, "password": password})
        if response.status_code == 409:
            raise UsernameTaken(_error(response).message or f"the name {username!r} is taken")
        _raise_for(response)
        return _parse(_UserReply, response).user()

    async def gateway_url(self) -> str | None:
        """The gateway address the server tells its clients (``GET /endpoints``); None when the
        server does not say (an older server: 404), so the caller falls back to its default."""
        response = await self._call("GET", "/endpoints")
        if response.status_code == 404:
            return None
        _raise_for(response)
        return _parse(_EndpointsReply, response).gateway_url

    async def login(self, username: str, password: str) -> AuthSession:
        """Log in; the caller keeps the session and passes it to the chat client."""
        response = await self._call("POST", "/sessions", json={"username": username, "password": password})
        if response.status_code == 401:
            raise InvalidCredentials("wrong username or password")
        _raise_for(response)
        reply = _parse(_SessionReply, response)
        return AuthSession(token=reply.token, session_id=reply.session_id, user=reply.user,
                           expires_at=reply.expires_at)

    async def logout(self, session: AuthSession) -> None:
        """End the session on the server; its token stops working at once."""
        response = await self._call("DELETE", "/sessions/current", token=session.token)
        if response.status_code == 401:
            return  # already dead: logging out is done
        _raise_for(response)

    async def sessions(self, session: AuthSession) -> list[SessionView]:
        """The user's live sessions, newest first; ``current`` marks ``session``."""
        response = await self._call("GET", "/sessions", token=session.token)
        _raise_for(response, authenticated=True)
        reply = _parse(_SessionsReply, response)
        return [SessionView(**item.model_dump()) for item in reply.sessions]

    async def revoke_session(self, session: AuthSession, session_id: str) -> bool:
        """End one of the user's sessions; False when it was no live session of theirs."""
        response = await self._call("DELETE", f"/sessions/{session_id}", token=session.token)
        if response.status_code in (404, 422):
            return False
        _raise_for(response, authenticated=True)
        return True

    async def logout_everywhere(self, session: AuthSession) -> None:
        """End every session of the user, ``session`` included."""
        response = await self._call("DELETE", "/sessions", token=session.token)
        _raise_for(response, authenticated=True)

    async def change_password(self, session: AuthSession, old: str, new: str) -> None:
        """Set a new password (the rule is checked here first); every other session ends.
        Raises InvalidCredentials when ``old`` is wrong."""
        problem = passwords.problem(new, session.user.username)
        if problem is not None:
            raise InvalidInput(problem.message, {"new_password": problem.message})
        response = await self._call("PUT", "/users/me/password", token=session.token,
                                    json={"old_password": old, "new_password": new})
        if response.status_code == 403:
            raise InvalidCredentials("the current password is wrong")
        _raise_for(response, authenticated=True)

    async def me(self, session: AuthSession) -> UserRef:
        response = await self._call("GET", "/users/me", token=session.token)
        _raise_for(response, authenticated=True)
        return _parse(_UserReply, response).user()

    async def users_page(self, session: AuthSession, after_id: int | None = None, limit: int = 100) -> UserPage:
        params: dict[str, int] = {"limit": limit}
        if after_id is not None:
            params["after_id"] = after_id
        response = await self._call("GET", "/users", token=session.token, params=params)
        _raise_for(response, authenticated=True)
        reply = _parse(_UsersReply, response)
        return UserPage(users=reply.users, next_after_id=reply.next_after_id)

    async def all_users(self, session: AuthSession, page_size: int = 100) -> list[UserRef]:
        """The whole directory, page by page, in id order."""
        users: list[UserRef] = []
        after_id: int | None = None
        while True:
            page = await self.users_page(session, after_id, page_size)
            users.extend(page.users)
            if page.next_after_id is None or not page.users:
                return users
            after_id = page.next_after_id

    async def call(self, session: AuthSession, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An authenticated request to another part of the API (client.core.e2ee.keys_api);
        failures raise like every other call here. A 404 is returned for the caller to read."""
        response = await self._call(method, path, token=session.token, **kwargs)
        if response.status_code != 404:
            _raise_for(response, authenticated=True)
        return response

    async def _call(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            return await self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            if is_certificate_error(exc):
                raise CertificateNotTrusted(
                    "the server's certificate is not trusted (wrong CA file, or not the server you meant)"
                ) from None
            raise ServerUnreachable(f"cannot reach the server at {self._http.base_url.host}: "
                                    f"{type(exc).__name__}") from None


def _error(response: httpx.Response) -> _ErrorDetail:
    try:
        return _ErrorReply.model_validate_json(response.content).error
    except ValidationError:
        return _ErrorDetail(code=str(response.status_code), message=response.reason_phrase)


def _fields(detail: _ErrorDetail) -> dict[str, str]:
    # The server may name fields as a mapping or as a list of {field, message}; accept both.
    if isinstance(detail.fields, dict):
        return {str(k): str(v) for k, v in detail.fields.items()}
    if isinstance(detail.fields, list):
        out = {}
        for item in detail.fields:
            if isinstance(item, dict):
                name = item.get("field") or item.get("name") or item.get("loc") or "?"
                out[str(name)] = str(item.get("message") or item.get("msg") or "")
        return out
    return {}


def _raise_for(response: httpx.Response, *, authenticated: bool = False) -> None:
    if response.is_success:
        return
    detail = _error(response)
    status = response.status_code
    if status == 401 and authenticated:
        raise SessionExpired(detail.message or "the session has expired: log in again")
    if status == 422 or status == 400:
        raise InvalidInput(detail.message or "the server rejected the input", _fields(detail))
    if status == 429:
        raise TooManyAttempts(detail.message or "too many attempts: wait a little and try again")
    if status >= 500:
        raise ServerUnreachable(f"the server failed ({status}); try again later")
    raise ClientError(detail.message or f"unexpected answer {status}")


def _parse(model: type[BaseModel], response: httpx.Response) -> Any:
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        raise ProtocolFailure("the server's answer was not understood") from None
