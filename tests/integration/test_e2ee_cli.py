"""``chase cli`` with end-to-end encryption: private messages go out encrypted and the tail of
the other person reads them; ``verify`` shows the safety number and both people's device keys;
``backup`` shows a recovery key once."""

from __future__ import annotations

import sqlalchemy as sa

from chase.store.tables import messages
from client.cli import Exit
from tests.helpers import wait_until
from tests.integration.system import System
from tests.integration.test_client_cli import cli, system, tail  # noqa: F401 - the fixture too


async def test_encrypted_say_verify_and_backup(system: System) -> None:  # noqa: F811
    for name in ("alice", "bob"):
        assert (await cli(system, "register", name))[0] == Exit.OK
    code, out, err = await cli(system, "backup", "alice")
    assert code == Exit.OK, err
    recovery_key = out.split("\n\n")[1].strip()
    assert len(recovery_key.split()) == 13
    bob = await tail(system, "bob")
    try:
        code, _, err = await cli(system, "say", "alice", "--to", "bob", "only for bob")
        assert code == Exit.OK, err
        await wait_until(lambda: len(bob.lines) == 1, timeout=20)
        code, out, err = await cli(system, "verify", "alice", "bob")
        assert code == Exit.OK, err
        assert "Safety number of your conversation with bob" in out and "bob's devices:" in out
    finally:
        await bob.stop()
    assert bob.lines[0].endswith("alice -> you: only for bob")
    async with system.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = (await conn.execute(sa.select(messages.c.body, messages.c.ciphertext))).all()
    assert [(row.body, row.ciphertext is not None) for row in rows] == [("", True)]
