"""The run's own corner of the shared MariaDB and RabbitMQ: create it, ask versions, remove it.

Every database this module creates is named ``chase_bench_<run id>_<purpose>`` and every
exchange and queue starts with the run's bus namespace ``bench-<run id>``, so cleaning up never
touches anything another run or a test made.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pymysql


def _admin(mysql_url: str) -> pymysql.Connection:
    parts = urlsplit(mysql_url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
    )


def database_url(server_url: str, name: str) -> str:
    """``server_url`` (``mysql+asyncmy://user@host:port``) pointing at database ``name``."""
    return f"{server_url.rstrip('/')}/{name}"


def create_database(server_url: str, name: str) -> str:
    """Create an empty utf8mb4 database ``name``; returns its SQLAlchemy URL."""
    admin = _admin(server_url)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    finally:
        admin.close()
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    admin = _admin(server_url)
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.close()


def mariadb_version(server_url: str) -> str:
    admin = _admin(server_url)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT VERSION()")
            return str(cur.fetchone()[0])
    finally:
        admin.close()


async def rabbitmq_version(amqp_url: str) -> str | None:
    import aio_pika

    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        version = connection.transport.connection.server_properties.get("version")
    finally:
        await connection.close()
    return version.decode() if isinstance(version, bytes) else version


async def delete_namespace(amqp_url: str, namespace: str, queues: list[str], exchanges: list[str]) -> list[str]:
    """Delete ``<namespace>.<name>`` queues and exchanges; returns what could not be deleted.

    Each deletion gets a fresh channel, because a refused one (say, an exclusive queue still
    held by a process that is going away) closes its channel.
    """
    import aio_pika

    failed: list[str] = []
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        for kind, names in (("queue", queues), ("exchange", exchanges)):
            for name in names:
                full = f"{namespace}.{name}"
                channel = await connection.channel()
                try:
                    if kind == "queue":
                        await channel.queue_delete(full)
                    else:
                        await channel.exchange_delete(full)
                except Exception as exc:  # noqa: BLE001 - report and go on cleaning the rest
                    failed.append(f"{kind} {full}: {exc!r}")
                finally:
                    if not channel.is_closed:
                        await channel.close()
    return failed
