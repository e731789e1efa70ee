"""Fixtures for the real services this machine runs: MariaDB and RabbitMQ.

Integration and end-to-end tests talk to them over real connections. When one is down, the
tests that need it skip with the reason, except under ``CI=true`` where they fail: CI must
never pass by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Tracebacks in test output as plain text, as the services log them: structlog's default
    renders them with rich when it is installed (a test dependency), with every local variable
    (a password, a token) and at great cost in time."""
    import structlog

    processors = list(structlog.get_config()["processors"])
    processors[-1] = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(processors=processors)


MARIADB_URL = os.environ.get("CHASE_TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306/test")
AMQP_URL = os.environ.get("CHASE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI must not skip it)")
    pytest.skip(message)


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB database for one test; dropped afterwards."""
    require_service("MariaDB", "127.0.0.1", 3306)
    import pymysql

    name = f"chase_t_{uuid.uuid4().hex[:12]}"
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        yield MARIADB_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'chase.db'}"


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on the real MariaDB."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("mariadb_url")


@pytest.fixture
def amqp_url() -> str:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    return AMQP_URL


@pytest.fixture
def bus_namespace() -> str:
    """A namespace of its own for one test, so queues and exchanges never collide."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def migrated_engine(database_url: str) -> AsyncIterator[object]:
    """An engine on a fresh database with the schema at head (SQLite and MariaDB)."""
    from chase.store import migrate
    from chase.store.engine import create_engine

    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dev CA and server certificate for localhost, made once per test run."""
    from chase.tls import ensure_dev_certs

    directory = tmp_path_factory.mktemp("certs")
    ensure_dev_certs(directory)
    return directory


@pytest.fixture(autouse=True)
def client_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Clients (and CLI processes started by a test) keep their local files in the test's own
    directory, never in the real home: a leftover outbox must not be sent to another test's server."""
    path = tmp_path / "client-data"
    monkeypatch.setenv("CHASE_CLIENT_DATA_DIR", str(path))
    return path
