"""Resource exhaustion from localhost, bounded in count and time: idle and slow sockets, huge
bodies and a client that never reads leave another user's login and messages working."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from chase.store.tables import messages
from chase.tls import client_context
from services.auth.settings import AuthSettings
from tests.helpers import port_open, unused_port, wait_until
from tests.integration.system import System, running_system

pytestmark = pytest.mark.timeout(90)


def host_port(url: str) -> tuple[str, int]:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return host, int(port)


async def idle_tcp(url: str, count: int, stack: AsyncExitStack) -> list[asyncio.StreamReader]:
    host, port = host_port(url)
    readers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, port)
        stack.callback(writer.close)
        readers.append(reader)
    return readers


async def idle_tls(url: str, ca: Path, count: int, stack: AsyncExitStack) -> list[asyncio.StreamReader]:
    host, port = host_port(url)
    readers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, port, ssl=client_context(ca), server_hostname=host)
        stack.callback(writer.transport.abort)
        readers.append(reader)
    return readers


async def post_raw(url: str, ca: Path, head: bytes, body: bytes) -> bytes:
    """Send a request head and some body over TLS; the status line of the answer."""
    host, port = host_port(url)
    reader, writer = await asyncio.open_connection(host, port, ssl=client_context(ca), server_hostname=host)
    try:
        writer.write(head + body)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.readline()
    finally:
        writer.transport.abort()


async def no_read_client(url: str, ca: Path, token: str, frames: list[str], stack: AsyncExitStack) -> None:
    """Open a WebSocket by hand, send ``frames``, and never read another byte (the socket
    buffers fill and stay full, as with a client that hangs)."""
    import socket

    from websockets.frames import Frame, Opcode

    host, port = host_port(url.replace("wss", "https"))
    # A small receive buffer, as a stalled phone has: the kernel absorbs little, so what the
    # client does not read piles up on the server, where the outbox bound must catch it.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    reader, writer = await asyncio.open_connection(sock=sock, ssl=client_context(ca), server_hostname=host)
    stack.callback(writer.transport.abort)
    writer.write((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    async with asyncio.timeout(10):
        assert (await reader.readline()).startswith(b"HTTP/1.1 101")
    for text in frames:
        writer.write(Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=[]))
    await writer.drain()
    reader._transport.pause_reading()  # noqa: SLF001 - what a client that stops reading does


def slow_drops() -> float:
    return REGISTRY.get_sample_value("chase_gateway_slow_clients_dropped_total") or 0.0


@pytest.fixture
async def embedded(sqlite_url: str, dev_certs: Path) -> AsyncIterator[System]:
    # The smallest outbox the settings allow, so two pages (not six) show the bound even when
    # a busy machine answers few of the thirty history queries in time.
    async with running_system(sqlite_url, certs_dir=dev_certs, gateway_overrides={"outbox_max_bytes": 65_536}) as system:
        yield system


async def test_idle_sockets_huge_bodies_and_a_no_read_client_leave_others_working(embedded: System) -> None:
    system = embedded
    alice, bob = await system.login("alice"), await system.login("bob")
    # A public history of 200 bodies of 4,000 characters: every page is ~850 KB.
    async with system.engine.begin() as conn:
        await conn.execute(messages.insert(), [
            {"sender_id": alice.user.id, "recipient_id": None, "conversation": "public", "body": "x" * 4000,
             "client_msg_id": f"big-{i}", "created_at": datetime(2026, 1, 1)} for i in range(200)
        ])
    before = slow_drops()
    async with AsyncExitStack() as stack:
        # 300 idle sockets: raw TCP and completed TLS on the auth port, raw TCP on the gateway.
        await idle_tcp(system.auth_url, 150, stack)
        await idle_tls(system.auth_url, system.ca_path, 100, stack)
        await idle_tcp(system.gateway_url.replace("wss", "https"), 50, stack)

        # Three 100 MB bodies, declared: refused before a byte of them is read.
        host = host_port(system.auth_url)[0]
        big_head = (f"POST /api/v1/users HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {100 * 1024 * 1024}\r\n\r\n").encode()
        statuses = await asyncio.gather(*(post_raw(system.auth_url, system.ca_path, big_head, b"{" * 65536)
                                          for _ in range(3)))
        assert all(status.startswith(b"HTTP/1.1 413") for status in statuses), statuses
        # A chunked body that keeps growing: refused once it passes the limit.
        chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
        chunked_head = (f"POST /api/v1/users HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n").encode()
        status = await post_raw(system.auth_url, system.ca_path, chunked_head, chunk * 8)
        assert status.startswith(b"HTTP/1.1 413"), status

        # Bob asks for big pages and never reads: the gateway drops him, nobody waits for him.
        await no_read_client(system.gateway_url, system.ca_path, bob.token, [
            f'{{"type":"history","request_id":"h{i}","limit":200}}' for i in range(30)
        ], stack)
        await wait_until(lambda: slow_drops() > before, timeout=30)

        # Meanwhile carol registers, logs in, and talks with alice as usual.
        carol = await system.login("carol")
        async with system.client(alice.token) as a, system.client(carol.token) as c:
            await a.expect("hello")
            await c.expect("hello")
            await c.send_frame(type="send", client_msg_id="c1", body="hello under load")
            assert (await c.expect("ack")).client_msg_id == "c1"
            await a.expect("message", lambda f: f.message.body == "hello under load")


@asynccontextmanager
async def auth_alone(sqlite_url: str, certs: Path, **overrides: object) -> AsyncIterator[str]:
    from chase.store import migrate
    from chase.store.engine import create_engine
    from services.auth import main as auth_main

    settings = AuthSettings(database_url=sqlite_url, certs_dir=certs, port=unused_port(), bcrypt_rounds=4,
                            **overrides)
    engine = create_engine(sqlite_url)
    await migrate.upgrade(engine)
    task = asyncio.create_task(auth_main.run(settings, engine=engine, bus=None))
    try:
        await wait_until(lambda: port_open(settings.port) if not task.done() else True)
        if task.done():
            task.result()
        yield f"https://127.0.0.1:{settings.port}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read(1) == b""
    except (ConnectionError, ssl.SSLError):
        return True


async def test_idle_and_slowloris_sockets_are_dropped_after_the_header_deadline(
    sqlite_url: str, dev_certs: Path
) -> None:
    async with auth_alone(sqlite_url, dev_certs, header_timeout_seconds=1.0, max_connections=30) as url, \
            AsyncExitStack() as stack:
        ca = dev_certs / "ca.pem"
        readers = await idle_tcp(url, 10, stack) + await idle_tls(url, ca, 10, stack)
        # A slowloris: a request head one byte at a time, forever.
        host, port = host_port(url)
        slow_reader, slow_writer = await asyncio.open_connection(host, port, ssl=client_context(ca),
                                                                 server_hostname=host)
        stack.callback(slow_writer.transport.abort)

        async def trickle() -> None:
            for byte in b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1000:
                slow_writer.write(bytes([byte]))
                await asyncio.sleep(0.2)

        trickler = asyncio.create_task(trickle())
        stack.callback(trickler.cancel)
        async with asyncio.timeout(15):
            results = await asyncio.gather(*(closed_by_server(r) for r in [*readers, slow_reader]))
        assert all(results)
        # Past max_connections a new TLS connection is dropped at once.
        many = await idle_tls(url, ca, 30, stack)
        extra = await idle_tls(url, ca, 1, stack)
        async with asyncio.timeout(5):
            assert await closed_by_server(extra[0])
        del many
