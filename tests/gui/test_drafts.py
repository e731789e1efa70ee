"""Per-conversation drafts: kept when switching, sent only where they were written, kept
across a restart, per account."""

from __future__ import annotations

import asyncio
from typing import Any

from client.core.conversations import PUBLIC
from client.qt.account_prefs import AccountPrefs
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app, other_user
from tests.helpers import wait_until
from tests.integration.system import System


def test_a_draft_stays_with_its_conversation_across_switching_and_restart(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        window = app.chat.window
        window.select_conversation(bob.me.id)
        qtbot.keyClicks(window.input, "for bob only")
        window.select_conversation(PUBLIC)
        assert window.input.toPlainText() == ""
        qtbot.keyClicks(window.input, "for everyone")
        window.select_conversation(bob.me.id)
        assert window.input.toPlainText() == "for bob only"
        # Sent where it was written, and the draft goes with it.
        window.input.submit()
        await wait_until(lambda: [m.body for m in bob.store.messages(app.chat.session.user.id)] == ["for bob only"])
        assert bob.store.messages(PUBLIC) == []
        window.select_conversation(PUBLIC)
        assert window.input.toPlainText() == "for everyone"
        await close_all(app)

        # A restart: the draft is there again; another account on this computer does not see it.
        again = make_app(system, settings)
        await log_in(again, qtbot, "alice")
        assert again.chat.window.input.toPlainText() == "for everyone"
        assert again.chat.window.input.textCursor().position() == len("for everyone")
        again.chat.window.select_conversation(bob.me.id)
        assert again.chat.window.input.toPlainText() == ""
        await close_all(again, bob)
        assert AccountPrefs(settings, system.auth_url, bob.me.id).draft(PUBLIC) == ""

    run(qloop, scenario())
