"""`chase admin` use cases against a running system: a disabled user's sessions end at once on
the gateway, logins fail like a wrong password, a reset password enables the account again,
counts and the purge of dead sessions."""

from __future__ import annotations

import pytest

from chase.clock import SystemClock
from services.auth import admin
from services.auth.client import AuthRejected
from tests.integration.system import PASSWORD, System

pytestmark = pytest.mark.timeout(90)
NEW_PASSWORD = "another long passphrase"


async def test_disable_ends_every_session_and_reset_enables_again(system: System) -> None:
    clock = SystemClock()
    first = await system.login("alice")
    second = await system.login("alice", register=False)
    bob = await system.login("bob")
    async with system.client(first.token) as c1, system.client(second.token) as c2, system.client(bob.token) as b:
        for client in (c1, c2, b):
            await client.expect("hello")
        assert await admin.disable_user(system.engine, system.bus, clock, "ALICE", rounds=4) == 2
        assert await c1.closed() == (4401, "session revoked")
        assert await c2.closed() == (4401, "session revoked")
        await b.send_frame(type="ping", request_id="still-open")
        await b.expect("pong")

    with pytest.raises(AuthRejected) as refused:
        await system.auth.login("alice", PASSWORD)
    assert refused.value.code == "invalid_credentials"
    [alice_row, bob_row] = await admin.list_users(system.engine, clock)
    assert (alice_row.username, alice_row.disabled, alice_row.live_sessions) == ("alice", True, 0)
    assert (bob_row.disabled, bob_row.live_sessions) == (False, 1)
    assert await admin.counts(system.engine, clock) == admin.Counts(users=2, disabled_users=1, live_sessions=1,
                                                                   messages=0)

    assert await admin.reset_password(system.engine, system.bus, clock, "alice", NEW_PASSWORD, rounds=4) == 0
    again = await system.auth.login("alice", NEW_PASSWORD)
    assert again.user.id == first.user.id
    # Two revoked sessions are purged; the live ones stay.
    assert await admin.purge_sessions(system.engine, clock) == 2
    assert (await admin.counts(system.engine, clock)).live_sessions == 2


async def test_unknown_user_and_bad_password_are_refused_in_words(system: System) -> None:
    clock = SystemClock()
    with pytest.raises(admin.AdminError, match="no user is called 'nobody'"):
        await admin.disable_user(system.engine, system.bus, clock, "nobody", rounds=4)
    await system.login("carol")
    with pytest.raises(admin.AdminError, match="at least 8 characters"):
        await admin.reset_password(system.engine, system.bus, clock, "carol", "short", rounds=4)


def test_the_command_line(tmp_path) -> None:  # noqa: ANN001
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "CHASE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'chase.db'}"}
    env.pop("CHASE_AMQP_URL", None)

    def chase(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "chase.cli", *args], env=env, capture_output=True, text=True,
                              timeout=60)

    assert chase("migrate").returncode == 0
    stats = chase("admin", "stats")
    assert json.loads(stats.stdout) == {"users": 0, "disabled_users": 0, "live_sessions": 0, "messages": 0}
    missing = chase("admin", "disable", "nobody")
    assert (missing.returncode, missing.stderr) == (1, "chase admin: no user is called 'nobody'\n")
    assert chase("admin", "purge-sessions").stdout == "purged 0 expired or revoked sessions\n"
