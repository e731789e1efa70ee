"""The main window: sized to the screen, remembered, Ctrl+K and Escape."""

from __future__ import annotations

import asyncio
from typing import Any

from chase.schemas import UserRef
from client.core.conversations import PUBLIC
from client.qt.main_window import MainWindow
from client.qt.models import ConversationListModel, MessageListModel
from client.qt.qt import QGuiApplication, QRect, Qt
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app, other_user
from tests.integration.system import System

ME, BOB, CAROL = UserRef(id=1, username="alice"), UserRef(id=2, username="bob"), UserRef(id=3, username="carol")


def _window(qtbot: Any, settings: Any) -> MainWindow:
    conversations = ConversationListModel(ME.id)
    conversations.set_users([BOB, CAROL], online=set())
    window = MainWindow(ME, conversations, MessageListModel(ME.id), muted=False, settings=settings)
    qtbot.addWidget(window)
    return window


def test_first_sized_to_the_screen_then_where_it_was_left(qapp: Any, qtbot: Any, settings: Any) -> None:
    free = QGuiApplication.primaryScreen().availableGeometry()
    first = _window(qtbot, settings)
    assert free.contains(first.geometry())
    assert first.width() >= min(free.width(), 640) and first.width() > free.width() // 2
    first.show()
    qtbot.waitExposed(first)
    first.setGeometry(QRect(free.left() + 20, free.top() + 30, 500, 380))
    first.close()
    again = _window(qtbot, settings)
    assert (again.geometry().width(), again.geometry().height()) == (500, 380)


def test_ctrl_k_jumps_to_a_conversation_and_escape_leaves(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        window = app.chat.window
        qtbot.keyClick(window.input, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
        assert window.switcher.isVisible()
        qtbot.keyClick(window.switcher.search, Qt.Key.Key_Escape)
        assert not window.switcher.isVisible() and window.current_conversation is PUBLIC
        qtbot.keyClick(window.input, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
        qtbot.keyClicks(window.switcher.search, "BO")
        assert window.switcher.filtered.rowCount() == 1
        qtbot.keyClick(window.switcher.search, Qt.Key.Key_Return)
        assert not window.switcher.isVisible() and window.current_conversation == bob.me.id
        assert window.focusWidget() is window.input
        await close_all(app, bob)

    run(qloop, scenario())
