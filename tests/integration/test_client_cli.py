"""``chase cli`` as a user runs it: a real process against the real system over TLS."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from chase.store.tables import messages
from chase.tls import ensure_dev_certs
from client.cli import Exit
from tests.helpers import wait_until
from tests.integration.system import PASSWORD, System, running_system

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def system(sqlite_url: str, dev_certs: Path) -> AsyncIterator[System]:
    async with running_system(sqlite_url, certs_dir=dev_certs) as running:
        yield running


def cli_args(system: System, command: str, user: str, *rest: str, ca: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "client.cli", command, "--server", system.auth_url, "--gateway",
            system.gateway_url, "--ca", str(ca or system.ca_path), "--user", user, *rest]


async def cli(system: System, command: str, user: str, *rest: str, password: str = PASSWORD,
              stdin: bytes | Path | None = None, ca: Path | None = None) -> tuple[int, str, str]:
    """Run one CLI command; ``stdin`` is piped in, or (a Path) the file is its stdin (``< file``)."""
    env = {**os.environ, "CHASE_PASSWORD": password}
    source = stdin.open("rb") if isinstance(stdin, Path) else asyncio.subprocess.PIPE
    try:
        process = await asyncio.create_subprocess_exec(
            *cli_args(system, command, user, *rest, ca=ca), cwd=ROOT, env=env,
            stdin=source, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        piped = None if isinstance(stdin, Path) else stdin or b""
        out, err = await asyncio.wait_for(process.communicate(piped), 90)
    finally:
        if not isinstance(source, int):
            source.close()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class Tail:
    """``chase cli tail`` running in the background, its output collected line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode().rstrip("\n"))

    async def stop(self) -> None:
        self.process.terminate()
        await self.process.wait()
        await self._reader


async def tail(system: System, user: str) -> Tail:
    env = {**os.environ, "CHASE_PASSWORD": PASSWORD}
    process = await asyncio.create_subprocess_exec(
        *cli_args(system, "tail", user, "--history", "0"), cwd=ROOT, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    # "connected" on stderr means the tail is following: later messages will be printed.
    while b"connected" not in (line := await asyncio.wait_for(process.stderr.readline(), 30)):
        assert line, "tail ended before it connected"
    return Tail(process)


async def test_register_say_and_tail(system: System) -> None:
    assert (await cli(system, "register", "alice"))[0] == Exit.OK
    code, _, err = await cli(system, "register", "Alice")
    assert code == Exit.REFUSED and "taken" in err
    assert (await cli(system, "register", "bob"))[0] == Exit.OK
    bob = await tail(system, "bob")
    try:
        code, out, _ = await cli(system, "say", "alice", "hello", "room")
        assert code == Exit.OK and out.startswith("sent (message ")
        assert (await cli(system, "say", "alice", "--to", "BOB", "psst"))[0] == Exit.OK
        await wait_until(lambda: len(bob.lines) == 2, timeout=20)
    finally:
        await bob.stop()
    assert bob.lines[0].endswith("  alice -> room: hello room")
    assert bob.lines[1].endswith("  alice -> you: psst")
    assert bob.lines[0][2] == ":" and bob.lines[0][5] == ":"  # HH:MM:SS first


async def test_the_server_address_alone_is_enough(system: System) -> None:
    """Without --gateway, the CLI asks the auth API where the gateway is (not the usual port)."""
    assert (await cli(system, "register", "alice"))[0] == Exit.OK
    args = [a for a in cli_args(system, "say", "alice", "found", "it") if a not in ("--gateway", system.gateway_url)]
    process = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env={**os.environ, "CHASE_PASSWORD": PASSWORD},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == Exit.OK, err.decode()
    assert out.decode().startswith("sent (message ")


async def test_chat_sends_lines_and_switches_conversation(system: System) -> None:
    for name in ("alice", "bob"):
        assert (await cli(system, "register", name))[0] == Exit.OK
    bob = await tail(system, "bob")
    try:
        code, _, err = await cli(system, "chat", "alice", stdin=b"hi all\n/to bob\njust you\n/to nobody\n")
        assert code == Exit.OK, err
        assert "no user called 'nobody'" in err
        await wait_until(lambda: len(bob.lines) == 2, timeout=20)
    finally:
        await bob.stop()
    assert bob.lines[0].endswith("alice -> room: hi all") and bob.lines[1].endswith("alice -> you: just you")


async def test_failures_have_their_own_exit_codes(system: System, tmp_path: Path) -> None:
    assert (await cli(system, "register", "alice"))[0] == Exit.OK
    code, _, err = await cli(system, "say", "alice", "hi", password="wrong password")
    assert code == Exit.AUTH and "wrong username or password" in err
    code, _, _ = await cli(system, "say", "alice", "--to", "nobody", "hi")
    assert code == Exit.REFUSED
    ensure_dev_certs(tmp_path)
    code, _, err = await cli(system, "say", "alice", "hi", ca=tmp_path / "ca.pem")
    assert code == Exit.CERTIFICATE and "not trusted" in err


async def stored_bodies(system: System) -> list[str]:
    async with system.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = await conn.execute(sa.select(messages.c.body).order_by(messages.c.id))
        return [r[0] for r in rows.all()]


async def test_300_piped_lines_are_stored_in_order_and_chat_ends_cleanly_at_eof(system: System) -> None:
    assert (await cli(system, "register", "alice"))[0] == Exit.OK
    lines = [f"line {n:03d}" for n in range(300)]
    code, out, err = await cli(system, "chat", "alice", stdin=("\n".join(lines) + "\n").encode())
    assert code == Exit.OK, err
    assert "Traceback" not in err and "not sent yet" not in err
    assert await stored_bodies(system) == lines
    assert [line.split(": ", 1)[1] for line in out.splitlines()] == lines  # each shown once, in order


async def test_chat_reads_a_file_given_as_stdin_and_ends_cleanly(system: System, tmp_path: Path) -> None:
    assert (await cli(system, "register", "alice"))[0] == Exit.OK
    notes = tmp_path / "notes.txt"
    notes.write_text("first\n\nsecond\n/to all\nthird")  # a blank line, a command, no final newline
    code, _, err = await cli(system, "chat", "alice", stdin=notes)
    assert code == Exit.OK, err
    assert "Traceback" not in err
    assert await stored_bodies(system) == ["first", "second", "third"]


async def test_messages_unsent_at_exit_are_announced_and_sent_next_time(system: System) -> None:
    assert (await cli(system, "register", "alice"))[0] == Exit.OK
    env = {**os.environ, "CHASE_PASSWORD": PASSWORD}
    process = await asyncio.create_subprocess_exec(
        *cli_args(system, "chat", "alice", "--wait", "0.5"), cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdin is not None and process.stderr is not None
    while b"connected" not in (line := await asyncio.wait_for(process.stderr.readline(), 30)):
        assert line, "chat ended before it connected"
    await system.stop_gateway()
    while b"reconnecting" not in (line := await asyncio.wait_for(process.stderr.readline(), 30)):
        assert line, "chat ended before it noticed the gateway was gone"
    process.stdin.write(b"written offline 1\nwritten offline 2\n")
    process.stdin.close()
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == Exit.UNREACHABLE
    assert "2 message(s) not sent yet; they are kept and will be sent the next time alice logs in" in err.decode()
    assert "Traceback" not in err.decode()
    await system.start_gateway()
    code, _, err2 = await cli(system, "say", "alice", "later")
    assert code == Exit.OK, err2
    assert "sending 2 message(s) kept from an earlier session" in err2
    assert await stored_bodies(system) == ["written offline 1", "written offline 2", "later"]
