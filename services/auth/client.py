"""A client of the auth API over verified TLS, for the gateway, the CLI, the desktop app and tests.

It imports no Qt and nothing of the server (only the pydantic models), so any process can use
it. Failures are typed::

    AuthClientError
    ├── AuthUnavailable           cannot connect, timed out, or the service answered 5xx
    │                             (a read on a stale keep-alive connection is retried once first)
    │   └── CertificateNotTrusted the server's certificate did not verify against the CA
    └── AuthRejected              a 4xx: ``status``, ``code`` (see errors.ErrorCode), ``message``
        ├── InvalidToken          401 on a token (forged, expired, revoked, missing)
        └── InvalidCredentials    401 on login: wrong name or password
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from chase.tls import client_context
from services.auth.models import SessionCreated, SessionInfo, UserPage, UserPublic

__all__ = [
    "AuthClient",
    "AuthClientError",
    "AuthRejected",
    "AuthUnavailable",
    "CertificateNotTrusted",
    "InvalidCredentials",
    "InvalidToken",
    "SessionInfo",
]

M = TypeVar("M", bound=BaseModel)

#: How long an idle pooled connection is kept. Shorter than the auth service's own keep-alive
#: (``CHASE_AUTH_IDLE_TIMEOUT_SECONDS``, at least 5 s), so the client lets go of a connection before the
#: server closes it: with equal timeouts a request can leave on a connection the server is
#: closing at that very moment.
KEEPALIVE_EXPIRY_SECONDS = 4.0
#: Reads that are retried once, on a fresh connection, after a transport failure. Only these:
#: a POST or DELETE may have taken effect before the connection broke.
_RETRYABLE_METHODS = frozenset({"GET"})


class AuthClientError(Exception):
    pass


class AuthUnavailable(AuthClientError):
    """The auth service could not be reached or failed; the same call may work later."""


class CertificateNotTrusted(AuthUnavailable):
    """TLS verification failed: wrong CA, or not the server we meant to reach."""


class AuthRejected(AuthClientError):
    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        #: Seconds to wait, from Retry-After (throttled logins).
        self.retry_after = retry_after


class InvalidToken(AuthRejected):
    """The token is not (or no longer) a live session: log in again."""


class InvalidCredentials(AuthRejected):
    """Wrong username or password (the service does not say which)."""


class AuthClient:
    """Talks to ``base_url`` (``https://host:port``) trusting ``ssl_context`` or ``ca_path``.

    With neither, the system trust store is used. Verification is always on. ``transport``
    is for tests that run the app in-process (``httpx.ASGITransport``). Call :meth:`aclose`
    (or use ``async with``) when done.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        ca_path: Path | str | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if transport is None and not base_url.startswith("https://"):
            raise ValueError(f"the auth service is HTTPS only, got {base_url!r}")
        if ssl_context is None:
            ssl_context = client_context(Path(ca_path) if ca_path is not None else None)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            verify=ssl_context,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS),
        )

    async def __aenter__(self) -> AuthClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def check_token(self, token: str) -> SessionInfo:
        """The session behind ``token``; raises :class:`InvalidToken` or :class:`AuthUnavailable`."""
        response = await self._send("GET", "/api/v1/sessions/current", token=token)
        return self._parse(response, SessionInfo, on_401=InvalidToken)

    async def register(self, username: str, password: str) -> UserPublic:
        """Create an account; :class:`AuthRejected` with code ``username_taken`` or ``validation_failed``."""
        response = await self._send("POST", "/api/v1/users", json={"username": username, "password": password})
        return self._parse(response, UserPublic)

    async def login(self, username: str, password: str) -> SessionCreated:
        """A new session; keep ``.token`` secret and pass it to the gateway and to :meth:`logout`."""
        response = await self._send("POST", "/api/v1/sessions", json={"username": username, "password": password})
        return self._parse(response, SessionCreated, on_401=InvalidCredentials)

    async def logout(self, token: str) -> None:
        response = await self._send("DELETE", "/api/v1/sessions/current", token=token)
        self._raise_for_status(response, on_401=InvalidToken)

    async def me(self, token: str) -> UserPublic:
        response = await self._send("GET", "/api/v1/users/me", token=token)
        return self._parse(response, UserPublic, on_401=InvalidToken)

    async def directory(self, token: str, *, after_id: int = 0, limit: int | None = None) -> UserPage:
        """One page of users; call again with ``after_id=page.next_after_id`` while it is not None."""
        params: dict[str, int] = {"after_id": after_id}
        if limit is not None:
            params["limit"] = limit
        response = await self._send("GET", "/api/v1/users", token=token, params=params)
        return self._parse(response, UserPage, on_401=InvalidToken)

    async def _send(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        try:
            try:
                return await self._http.request(method, path, headers=headers, **kwargs)
            except _STALE_CONNECTION:
                if method not in _RETRYABLE_METHODS:
                    raise
                # A pooled keep-alive connection the server had already closed (or was closing
                # as the request left): the service is most likely up. The pool has dropped the
                # broken connection, so the second try opens a fresh one.
                return await self._http.request(method, path, headers=headers, **kwargs)
        except httpx.ConnectError as exc:
            if _is_verification_error(exc):
                raise CertificateNotTrusted(f"the certificate of {self._http.base_url} is not trusted") from exc
            raise AuthUnavailable(f"cannot reach {self._http.base_url}: {exc}") from exc
        except httpx.TransportError as exc:
            raise AuthUnavailable(f"no answer from {self._http.base_url}: {type(exc).__name__}") from exc

    def _parse(self, response: httpx.Response, model: type[M], *, on_401: type[AuthRejected] = AuthRejected) -> M:
        self._raise_for_status(response, on_401=on_401)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise AuthUnavailable(f"unexpected answer from the auth service: {exc.error_count()} errors") from None

    @staticmethod
    def _raise_for_status(response: httpx.Response, *, on_401: type[AuthRejected]) -> None:
        if response.is_success:
            return
        if response.status_code >= 500:
            raise AuthUnavailable(f"the auth service answered {response.status_code}")
        code, message = _error_of(response)
        retry_after = _retry_after(response)
        kind = on_401 if response.status_code == 401 else AuthRejected
        raise kind(response.status_code, code, message, retry_after=retry_after)


#: What a request on a connection the server closed under it fails with: the server hung up
#: before answering, or the socket was reset while reading or writing.
_STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "http_" + str(response.status_code), response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _is_verification_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
