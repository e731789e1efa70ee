"""``chase cli`` against escape sequences from another user, and ``chase cli sessions``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.system import System, running_system
from tests.integration.test_client_cli import cli, tail

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def system(sqlite_url: str, dev_certs: Path) -> AsyncIterator[System]:
    async with running_system(sqlite_url, certs_dir=dev_certs) as running:
        yield running


async def test_tail_shows_escape_sequences_without_obeying_them(system: System) -> None:
    mallory = await system.login("mallory")
    await system.login("bob")
    follower = await tail(system, "bob")
    try:
        async with system.client(mallory.token) as ws:
            await ws.expect("hello")
            for i, body in enumerate(["\x1b]0;pwned\x07", "ok\rbob -> room: forged", "\x1b]52;c;ZWNobyBoaQ==\x07",
                                      "\x9b2J", "done"]):
                await ws.send(json.dumps({"type": "send", "client_msg_id": f"m{i}", "body": body}))
                await ws.expect("ack")
        await wait_until(lambda: any("done" in line for line in follower.lines), timeout=30)
    finally:
        await follower.stop()
    raw = "\n".join(follower.lines)
    assert "\x1b" not in raw and "\r" not in raw and "\x9b" not in raw and "\x07" not in raw
    assert "ok␍bob -> room: forged" in raw and "␛]0;pwned␇" in raw


async def test_sessions_are_listed_and_ended_from_the_cli(system: System) -> None:
    laptop = await system.login("alice")
    code, out, _ = await cli(system, "sessions", "alice")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2 and any(line.endswith("(this one)") for line in lines)
    assert any(line.startswith(laptop.session_id) for line in lines)
    code, out, _ = await cli(system, "sessions", "alice", "--revoke", laptop.session_id)
    assert (code, out.strip()) == (0, f"ended session {laptop.session_id}")
    code, out, _ = await cli(system, "sessions", "alice", "--revoke", laptop.session_id)
    assert code == 6
    other = await system.login("alice", register=False)
    code, out, _ = await cli(system, "sessions", "alice", "--all")
    assert code == 0
    async with system.client(other.token) as ws:
        assert (await ws.closed())[0] == 4401
