"""Headers on every answer, docs from this server alone, no metrics on the public port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from chase.clock import FakeClock
from services.auth.app import create_app
from services.auth.settings import AuthSettings


@pytest.fixture
async def api(migrated_engine) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    app = create_app(AuthSettings(bcrypt_rounds=4), engine=migrated_engine,
                     clock=FakeClock(datetime(2026, 3, 1, tzinfo=UTC)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://auth.test") as client:
        yield client


async def test_token_responses_carry_hsts_nosniff_and_no_store(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/users", json={"username": "alice", "password": "correct horse battery"})
    for response in [
        await api.post("/api/v1/sessions", json={"username": "alice", "password": "correct horse battery"}),
        await api.post("/api/v1/sessions", json={"username": "alice", "password": "wrong one here"}),
        await api.get("/api/v1/users/me"),
    ]:
        assert response.headers["strict-transport-security"].startswith("max-age=63072000")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_docs_load_nothing_from_elsewhere(api: httpx.AsyncClient) -> None:
    page = await api.get("/docs")
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert (await api.get(asset)).status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (await api.get("/redoc")).status_code == 404
    assert (await api.get("/metrics")).status_code == 404
