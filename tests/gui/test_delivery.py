"""Delivery in the desktop app against a server with the default rate limit: 45 messages typed
while offline are stored and shown in the order typed; unsent messages are not dropped without
asking when logging out or closing, and the next login sends the kept ones."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from chase.store.tables import messages
from client.qt.main_window import UnsentChoice
from client.qt.qt import Qt, QWidget
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app
from tests.gui.server_thread import ServerThread
from tests.helpers import wait_until
from tests.integration.system import System


@pytest.fixture
def server(sqlite_url: str, dev_certs: Path) -> Iterator[ServerThread]:
    thread = ServerThread(sqlite_url, dev_certs)  # the gateway's default limits: 20/s, burst 40
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


async def stored_bodies(system: System) -> list[str]:
    async with system.engine.connect() as conn:  # type: ignore[attr-defined]
        return [r[0] for r in (await conn.execute(sa.select(messages.c.body).order_by(messages.c.id))).all()]


def type_and_send(qtbot: Any, window: Any, text: str) -> None:
    qtbot.keyClicks(window.input, text)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)


class Answers:
    """Stands in for the user in front of the unsent-messages question."""

    def __init__(self, *choices: UnsentChoice) -> None:
        self.choices = list(choices)
        self.asked: list[tuple[int, str]] = []

    def __call__(self, _parent: QWidget, count: int, leaving: str, *, kept: bool) -> UnsentChoice:
        assert kept
        self.asked.append((count, leaving))
        return self.choices.pop(0)


def test_45_messages_typed_offline_are_stored_and_shown_in_order(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, server: ServerThread, system: System, settings: Any) -> None:
    async def scenario() -> None:
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        chat, window = app.chat, app.chat.window
        await server.run(System.stop_gateway)
        await wait_until(lambda: window.status.text().startswith("Reconnecting"))
        typed = [f"offline {n}" for n in range(45)]
        for text in typed:
            type_and_send(qtbot, window, text)
        await wait_until(lambda: [p.body for p in chat.messages.pending()] == typed)
        await server.run(System.start_gateway)
        await wait_until(lambda: chat.client.unsent == 0, timeout=60)
        assert await server.run(stored_bodies) == typed
        await wait_until(lambda: chat.messages.pending() == [])
        assert chat.messages.bodies() == typed
        ids = chat.messages.message_ids()
        assert ids == sorted(ids) and len(set(ids)) == 45
        await close_all(app)

    run(qloop, scenario(), timeout=120)


def test_logging_out_with_unsent_messages_asks_and_the_next_login_sends_them(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, server: ServerThread, system: System, settings: Any) -> None:
    async def scenario() -> None:
        answers = Answers(UnsentChoice.STAY, UnsentChoice.KEEP)
        app = make_app(system, settings, ask_unsent=answers)
        await log_in(app, qtbot, "alice", register=True)
        window = app.chat.window
        await server.run(System.stop_gateway)
        await wait_until(lambda: window.status.text().startswith("Reconnecting"))
        type_and_send(qtbot, window, "kept 1")
        type_and_send(qtbot, window, "kept 2")
        await wait_until(lambda: app.chat.client.unsent == 2)
        qtbot.mouseClick(window.logout_button, Qt.MouseButton.LeftButton)
        assert answers.asked == [(2, "log out")] and app.chat is not None  # stayed
        qtbot.mouseClick(window.logout_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: app.chat is None and app.login.isVisible())
        assert answers.asked[-1] == (2, "log out")

        await server.run(System.start_gateway)
        await log_in(app, qtbot, "alice")
        chat = app.chat
        await wait_until(lambda: chat.client.unsent == 0, timeout=30)
        assert await server.run(stored_bodies) == ["kept 1", "kept 2"]
        await wait_until(lambda: chat.messages.bodies() == ["kept 1", "kept 2"] and chat.messages.pending() == [])
        await close_all(app)

    run(qloop, scenario(), timeout=120)


def test_closing_the_window_with_unsent_messages_asks_and_may_discard_them(
        qapp: Any, qloop: asyncio.AbstractEventLoop, qtbot: Any, server: ServerThread, system: System,
        settings: Any) -> None:
    # As in the real app: closing the main window must not quit Qt under the app's feet.
    qapp.setQuitOnLastWindowClosed(False)

    async def scenario() -> None:
        answers = Answers(UnsentChoice.STAY, UnsentChoice.DISCARD)
        app = make_app(system, settings, ask_unsent=answers)
        await log_in(app, qtbot, "alice", register=True)
        window = app.chat.window
        window.close()  # nothing unsent: no question
        await app.finished.wait()
        assert answers.asked == []

        app = make_app(system, settings, ask_unsent=answers)
        await log_in(app, qtbot, "alice")
        window = app.chat.window
        await server.run(System.stop_gateway)
        await wait_until(lambda: window.status.text().startswith("Reconnecting"))
        type_and_send(qtbot, window, "never mind")
        await wait_until(lambda: app.chat.client.unsent == 1)
        window.close()
        assert answers.asked == [(1, "quit")] and window.isVisible()  # stayed
        window.close()
        await app.finished.wait()
        assert answers.asked == [(1, "quit"), (1, "quit")]
        await server.run(System.start_gateway)

        app = make_app(system, settings, ask_unsent=answers)
        await log_in(app, qtbot, "alice")
        assert app.chat.client.unsent == 0 and app.chat.messages.bodies() == []
        await close_all(app)
        assert await server.run(stored_bodies) == []

    try:
        run(qloop, scenario(), timeout=120)
    finally:
        qapp.setQuitOnLastWindowClosed(True)
