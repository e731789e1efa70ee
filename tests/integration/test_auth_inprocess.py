"""`chase serve`'s gateway checks tokens by calling the auth service in-process: the same answer
as over HTTPS for every kind of token (live, forged, revoked, expired), on SQLite and MariaDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from chase.clock import FakeClock
from services.auth.app import create_app
from services.auth.client import AuthClient, InvalidToken
from services.auth.inprocess import InProcessTokenChecker
from services.auth.settings import AuthSettings

pytestmark = pytest.mark.timeout(60)
PASSWORD = "correct horse battery"
TTL = timedelta(hours=1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
async def app(migrated_engine, clock: FakeClock):  # noqa: ANN001, ANN201
    settings = AuthSettings(bcrypt_rounds=4, session_ttl_seconds=int(TTL.total_seconds()))
    return create_app(settings, engine=migrated_engine, clock=clock)


@pytest.fixture
async def over_https(app) -> AsyncIterator[AuthClient]:  # noqa: ANN001
    async with AuthClient("https://auth.test", transport=httpx.ASGITransport(app)) as client:
        yield client


async def answers(checkers: list, token: str) -> list[object]:
    """What each checker says of ``token``: the session, or the status it was refused with."""
    said: list[object] = []
    for checker in checkers:
        try:
            said.append(await checker.check_token(token))
        except InvalidToken as exc:
            said.append(exc.status)
    return said


async def test_in_process_checks_answer_as_the_api_does(app, over_https: AuthClient, clock: FakeClock) -> None:  # noqa: ANN001
    checkers = [InProcessTokenChecker(app.state.auth_service), over_https]
    await over_https.register("alice", PASSWORD)
    kept = await over_https.login("alice", PASSWORD)
    ended = await over_https.login("alice", PASSWORD)

    live = await answers(checkers, kept.token)
    assert live[0] == live[1] and live[0].session_id == kept.session_id and live[0].user == kept.user

    await over_https.logout(ended.token)
    assert await answers(checkers, ended.token) == [401, 401]  # revoked
    assert await answers(checkers, "not-a-token") == [401, 401]  # forged
    assert await answers(checkers, "x" * 10_000) == [401, 401]  # over the length any token has

    clock.advance(TTL.total_seconds() + 1)
    assert await answers(checkers, kept.token) == [401, 401]  # expired
