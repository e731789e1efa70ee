"""The gateway's token check when the auth service runs in the same process (``chase serve``).

A gateway elsewhere asks the auth API over HTTPS (:class:`services.auth.client.AuthClient`);
one in the same process calls the service's own session check instead, the very code behind
``GET /api/v1/sessions/current``: the same answer for a forged, expired or revoked token, with
no TLS, HTTP or JSON in between. It fails the way the HTTPS client does, so the gateway cannot
tell them apart: :class:`~services.auth.client.InvalidToken` (401) for a token that is no live
session, :class:`~services.auth.client.AuthUnavailable` when the session store does not answer.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from chase.logging import get_logger
from services.auth import errors
from services.auth.client import AuthUnavailable, InvalidToken
from services.auth.models import SessionInfo
from services.auth.service import AuthService

log = get_logger("chase.auth")


class InProcessTokenChecker:
    """A ``TokenChecker`` (see ``services.gateway.server``) over an :class:`AuthService`."""

    def __init__(self, service: AuthService) -> None:
        self._service = service

    async def check_token(self, token: str) -> SessionInfo:
        """The live session behind ``token``; raises :class:`InvalidToken` or :class:`AuthUnavailable`."""
        try:
            return await self._service.check_token(token)
        except errors.InvalidToken as exc:
            raise InvalidToken(exc.status, exc.code.value, exc.message) from None
        except SQLAlchemyError as exc:
            # The API answers these 503: over HTTPS the gateway would see AuthUnavailable too.
            log.warning("token check: session store unavailable", error=type(exc).__name__)
            raise AuthUnavailable(f"the session store did not answer: {type(exc).__name__}") from None
        except Exception:
            # The API answers 500 and logs it; the gateway asks the client to try again (1013).
            log.exception("token check failed")
            raise AuthUnavailable("the token check failed") from None
