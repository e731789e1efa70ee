"""`chase serve`: its gateway checks tokens with the auth service of the same process, in-process."""

from __future__ import annotations

import pytest

from chase.serve import token_checker
from services.auth.app import create_service
from services.auth.inprocess import InProcessTokenChecker
from services.auth.settings import AuthSettings
from services.gateway.settings import GatewaySettings


@pytest.fixture(autouse=True)
def _no_chase_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("CHASE_")]:
        monkeypatch.delenv(name)


def service():  # noqa: ANN201
    from sqlalchemy.ext.asyncio import create_async_engine

    # Not connected until used: nothing here runs a query.
    return create_service(AuthSettings(), engine=create_async_engine("sqlite+aiosqlite://"))


def test_the_gateway_checks_tokens_in_process_whatever_the_auth_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHASE_AUTH_PORT", "0")
    assert isinstance(token_checker(GatewaySettings(), service()), InProcessTokenChecker)


def test_an_explicit_gateway_auth_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHASE_GATEWAY_AUTH_URL", "https://auth.internal:9443")
    assert token_checker(GatewaySettings(), service()) is None
