"""``chase cli room ...``, ``say --room`` and ``tail --room`` as real processes against the
real system over TLS."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from client.cli import Exit
from tests.helpers import wait_until
from tests.integration.system import PASSWORD, System, running_system
from tests.integration.test_client_cli import ROOT, Tail, cli, cli_args

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def system(sqlite_url: str, dev_certs: Path) -> AsyncIterator[System]:
    async with running_system(sqlite_url, certs_dir=dev_certs) as running:
        yield running


async def test_rooms_from_the_command_line(system: System) -> None:
    for name in ("alice", "bob", "carol"):
        await system.auth.register(name, PASSWORD)
    code, out, err = await cli(system, "room", "alice", "create", "Project X", "--topic", "launch")
    assert code == Exit.OK, err
    assert out.startswith("created room ")
    assert (await cli(system, "room", "alice", "invite", "Project X", "bob"))[:2] == (Exit.OK, "invited bob\n")
    code, out, _ = await cli(system, "room", "bob", "list")
    assert code == Exit.OK and "Project X\tinvited" in out
    assert (await cli(system, "room", "bob", "join", "project x"))[:2] == (Exit.OK, "joined Project X\n")

    env = {**os.environ, "CHASE_PASSWORD": PASSWORD}
    process = await asyncio.create_subprocess_exec(
        *cli_args(system, "tail", "bob", "--room", "Project X", "--history", "5"), cwd=ROOT, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    while b"connected" not in (line := await asyncio.wait_for(process.stderr.readline(), 30)):
        assert line, "tail ended before it connected"
    follower = Tail(process)
    try:
        assert (await cli(system, "say", "alice", "--room", "Project X", "hello team"))[0] == Exit.OK
        assert (await cli(system, "say", "alice", "not for the room"))[0] == Exit.OK
        await wait_until(lambda: any("hello team" in line for line in follower.lines), timeout=30)
    finally:
        await follower.stop()
    assert any("alice -> #Project X: hello team" in line for line in follower.lines)
    assert any("bob joined" in line for line in follower.lines)  # his own join, from history
    assert not any("not for the room" in line for line in follower.lines)

    code, out, _ = await cli(system, "room", "bob", "members", "Project X")
    assert out.splitlines() == ["alice\towner", "bob\tmember"]
    # Carol is in no room: the same refusal whether it exists or not.
    code, _, err = await cli(system, "say", "carol", "--room", "1", "let me in")
    assert code != Exit.OK
    code, _, err = await cli(system, "room", "carol", "members", "1")
    assert code == Exit.REFUSED and "no such room" in err.lower()
    assert (await cli(system, "room", "alice", "leave", "Project X"))[0] == Exit.REFUSED  # the owner
    assert (await cli(system, "room", "bob", "leave", "Project X"))[:2] == (Exit.OK, "left Project X\n")
