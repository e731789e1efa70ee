"""The auth service over real HTTPS (uvicorn), and the AuthClient other services use."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from chase.config import ConfigError
from chase.store import migrate
from chase.store.engine import create_engine
from chase.tls import client_context
from services.auth import main
from services.auth.client import (
    KEEPALIVE_EXPIRY_SECONDS,
    AuthClient,
    AuthRejected,
    AuthUnavailable,
    CertificateNotTrusted,
    InvalidCredentials,
    InvalidToken,
)
from services.auth.settings import AuthSettings
from tests.faults import TcpForwarder
from tests.helpers import unused_port, wait_until


async def _answers(url: str, context: ssl.SSLContext) -> bool:
    try:
        async with httpx.AsyncClient(verify=context) as http:
            await http.get(url)
        return True
    except httpx.TransportError:
        return False


@pytest.fixture
async def server(sqlite_url: str, dev_certs: Path) -> AsyncIterator[str]:
    """The auth service on an unused port; yields its base URL and stops it by cancelling."""
    engine = create_engine(sqlite_url)
    await migrate.upgrade(engine)
    port = unused_port()
    settings = AuthSettings(port=port, certs_dir=dev_certs, bcrypt_rounds=4, database_url=sqlite_url)
    task = asyncio.create_task(main.run(settings, engine=engine, bus=None))
    base = f"https://127.0.0.1:{port}"
    try:
        await wait_until(lambda: task.done() or _answers(f"{base}/healthz", client_context(dev_certs / "ca.pem")))
        assert not task.done(), task
        yield base
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await engine.dispose()


async def test_openapi_is_served_over_verified_tls(server: str, dev_certs: Path) -> None:
    async with httpx.AsyncClient(verify=client_context(dev_certs / "ca.pem")) as http:
        response = await http.get(f"{server}/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "ChaSe auth"


async def test_a_client_without_the_dev_ca_refuses_the_server(server: str) -> None:
    async with httpx.AsyncClient(verify=client_context(None)) as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.get(f"{server}/openapi.json")
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


async def test_plain_http_is_not_served(server: str) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.TransportError):
            await http.get(server.replace("https://", "http://") + "/openapi.json")


async def test_auth_client_round_trip(server: str, dev_certs: Path) -> None:
    async with AuthClient(server, ca_path=dev_certs / "ca.pem") as client:
        user = await client.register("alice", "correct horse")
        with pytest.raises(AuthRejected) as taken:
            await client.register("ALICE", "correct horse")
        assert (taken.value.status, taken.value.code) == (409, "username_taken")
        with pytest.raises(InvalidCredentials):
            await client.login("alice", "wrong password")

        session = await client.login("alice", "correct horse")
        info = await client.check_token(session.token)
        assert (info.session_id, info.user.id, info.user.username) == (session.session_id, user.id, "alice")
        assert (await client.me(session.token)).id == user.id
        page = await client.directory(session.token)
        assert [u.username for u in page.users] == ["alice"] and page.next_after_id is None

        await client.logout(session.token)
        with pytest.raises(InvalidToken) as dead:
            await client.check_token(session.token)
        assert dead.value.code == "invalid_token"


async def test_auth_client_typed_failures(server: str) -> None:
    async with AuthClient(server) as untrusting:  # system trust store only
        with pytest.raises(CertificateNotTrusted):
            await untrusting.check_token("anything")
    async with AuthClient(f"https://127.0.0.1:{unused_port()}", ssl_context=client_context(None)) as nobody:
        with pytest.raises(AuthUnavailable):
            await nobody.check_token("anything")
    with pytest.raises(ValueError, match="HTTPS only"):
        AuthClient(server.replace("https://", "http://"))


async def test_a_token_check_survives_a_stale_keep_alive_connection(server: str, dev_certs: Path) -> None:
    """The auth service closes an idle keep-alive connection just as a token check goes out on
    it: the check is answered on a fresh connection, never turned into "unavailable"."""
    port = int(server.rsplit(":", 1)[1])
    async with TcpForwarder("127.0.0.1", port) as link, AuthClient(
        f"https://127.0.0.1:{link.port}", ca_path=dev_certs / "ca.pem"
    ) as client:
        await client.register("alice", "correct horse")
        session = await client.login("alice", "correct horse")
        assert (await client.check_token(session.token)).session_id == session.session_id
        assert link.accepted == 1  # one pooled connection so far
        for round_ in range(2, 4):
            link.go_stale()
            info = await client.check_token(session.token)
            assert info.session_id == session.session_id
            assert link.accepted == round_  # the retry went out on a fresh connection


async def test_a_write_on_a_stale_connection_is_not_repeated(server: str, dev_certs: Path) -> None:
    """A login may have taken effect before the connection broke: it is reported, not resent."""
    port = int(server.rsplit(":", 1)[1])
    async with TcpForwarder("127.0.0.1", port) as link, AuthClient(
        f"https://127.0.0.1:{link.port}", ca_path=dev_certs / "ca.pem"
    ) as client:
        await client.register("alice", "correct horse")
        link.go_stale()
        with pytest.raises(AuthUnavailable, match="no answer"):
            await client.login("alice", "correct horse")
        assert link.accepted == 1


def test_the_client_lets_go_of_idle_connections_before_the_server_closes_them() -> None:
    assert KEEPALIVE_EXPIRY_SECONDS < AuthSettings().idle_timeout_seconds
    with pytest.raises(ValidationError):  # no setting lets the server close first
        AuthSettings(idle_timeout_seconds=KEEPALIVE_EXPIRY_SECONDS)


async def test_missing_certificate_is_one_clear_error(sqlite_url: str, tmp_path: Path) -> None:
    engine = create_engine(sqlite_url)
    settings = AuthSettings(port=unused_port(), certs_dir=tmp_path, bcrypt_rounds=4)
    try:
        with pytest.raises(ConfigError, match="run `chase certs`"):
            await main.run(settings, engine=engine, bus=None)
    finally:
        await engine.dispose()


async def test_a_port_in_use_is_one_clear_error(server: str, sqlite_url: str, dev_certs: Path) -> None:
    engine = create_engine(sqlite_url)
    port = int(server.rsplit(":", 1)[1])
    settings = AuthSettings(port=port, certs_dir=dev_certs, bcrypt_rounds=4)
    try:
        with pytest.raises(ConfigError, match="cannot listen"):
            await main.run(settings, engine=engine, bus=None)
    finally:
        await engine.dispose()
