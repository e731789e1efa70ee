"""Reconnecting after the server restarts, and the Retry button once the fast attempts are over."""

from __future__ import annotations

import asyncio
from typing import Any

from client.core.events import ClientState
from client.qt.models import ConversationRoles
from client.qt.qt import Qt
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app, other_user
from tests.gui.server_thread import ServerThread
from tests.helpers import wait_until
from tests.integration.system import System


def test_after_a_server_restart_nothing_is_lost_or_doubled(qloop: asyncio.AbstractEventLoop, qtbot: Any,
                                                           server: ServerThread, system: System,
                                                           settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        chat, window = app.chat, app.chat.window
        await (await bob.send("before")).acked
        await wait_until(lambda: chat.messages.bodies() == ["before"])
        row = chat.conversations.index(chat.conversations.row_of(bob.me.id))
        assert row.data(ConversationRoles.ONLINE) is True
        await server.run(System.stop_gateway)
        await wait_until(lambda: window.status.text().startswith("Reconnecting"))
        # Who is online is not known while disconnected: bob is not shown green.
        assert row.data(ConversationRoles.ONLINE) is False
        assert "not known while you are offline" in row.data(Qt.ItemDataRole.ToolTipRole)
        # Typed while the server is down: kept, sent after the reconnect, shown once.
        qtbot.keyClicks(window.input, "typed while down")
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
        sent_while_down = await bob.send("bob while down")
        await server.run(System.start_gateway)
        await sent_while_down.acked
        await (await bob.send("after")).acked
        expected = {"before", "typed while down", "bob while down", "after"}
        await wait_until(lambda: set(chat.messages.bodies()) == expected, timeout=30)
        await wait_until(lambda: window.status.text() == "Connected")
        await wait_until(lambda: row.data(ConversationRoles.ONLINE) is True)
        ids = chat.messages.message_ids()
        # Each once, in id (commit) order; the two resends may commit in either order.
        assert len(ids) == 4 and ids == sorted(ids) and chat.messages.bodies()[0] == "before"
        assert chat.client.outbox.pending() == []
        await close_all(app, bob)

    run(qloop, scenario(), timeout=90)


def test_retry_button_once_the_fast_attempts_are_over(qloop: asyncio.AbstractEventLoop, qtbot: Any, server: ServerThread,
                                             system: System, settings: Any) -> None:
    async def scenario() -> None:
        app = make_app(system, settings, attempts=2)
        await log_in(app, qtbot, "alice", register=True)
        window = app.chat.window
        assert not window.retry_button.isVisible()
        await server.run(System.stop_gateway)
        await wait_until(lambda: window.retry_button.isVisible(), timeout=30)
        assert window.status.text().startswith("Offline") and "Trying again at" in window.status.text()
        assert "press Retry" in window.status.text() and window.status.toolTip()  # the technical reason
        assert app.chat.client.state is ClientState.OFFLINE
        await server.run(System.start_gateway)
        qtbot.mouseClick(window.retry_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: window.status.text() == "Connected", timeout=30)
        assert not window.retry_button.isVisible()
        await close_all(app)

    run(qloop, scenario(), timeout=90)
