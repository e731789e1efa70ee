"""The fault forwarder itself (tests/faults.py), against a local echo server: what each fault
looks like to a client, so the fault suite's faults mean what they say."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.faults import TcpForwarder


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def test_refuse_turns_new_connections_away_and_keeps_open_ones(echo: int) -> None:
    async with TcpForwarder("127.0.0.1", echo) as link:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        assert await roundtrip(reader, writer, b"before") == b"before"
        await link.refuse()
        late_reader, late_writer = await asyncio.open_connection("127.0.0.1", link.port)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await roundtrip(late_reader, late_writer, b"refused")
        assert await roundtrip(reader, writer, b"still") == b"still"
        await link.restore()
        again_reader, again_writer = await asyncio.open_connection("127.0.0.1", link.port)
        assert await roundtrip(again_reader, again_writer, b"back") == b"back"
        for w in (writer, late_writer, again_writer):
            w.close()


async def test_freeze_holds_everything_back_without_closing_and_thaw_lets_it_through(echo: int) -> None:
    async with TcpForwarder("127.0.0.1", echo) as link:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        link.freeze()
        writer.write(b"held")
        await writer.drain()
        pending = asyncio.ensure_future(reader.readexactly(4))
        done, _ = await asyncio.wait({pending}, timeout=0.3)
        assert not done and not writer.is_closing()  # nothing came back, nothing was closed
        link.thaw()
        assert await asyncio.wait_for(pending, 5) == b"held"
        writer.close()


async def test_latency_delays_but_delivers_everything_in_order(echo: int) -> None:
    async with TcpForwarder("127.0.0.1", echo) as link:
        link.latency = 0.01
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        for i in range(5):
            assert await roundtrip(reader, writer, f"m{i}".encode()) == f"m{i}".encode()
        writer.close()
