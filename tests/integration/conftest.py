"""The whole system in-process, once on the embedded default and once on RabbitMQ + MariaDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.system import System, running_system


@pytest.fixture(params=["embedded", "rabbitmq-mariadb"])
async def system(request: pytest.FixtureRequest, dev_certs: Path, bus_namespace: str) -> AsyncIterator[System]:
    """Auth, persistence and a gateway over TLS; each test using it runs on both deployments."""
    if request.param == "embedded":
        database_url, amqp_url = request.getfixturevalue("sqlite_url"), None
    else:
        database_url = request.getfixturevalue("mariadb_url")
        amqp_url = request.getfixturevalue("amqp_url")
    async with running_system(database_url, certs_dir=dev_certs, amqp_url=amqp_url, namespace=bus_namespace) as running:
        yield running
