"""The main window against a real server: send, receive, unread, history, sound, limits."""

from __future__ import annotations

import asyncio
from typing import Any

from client.core.conversations import PUBLIC
from client.qt.models import ConversationRoles
from client.qt.qt import QApplication, Qt
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app, other_user
from tests.helpers import wait_until
from tests.integration.system import System


def sidebar_titles(app: Any) -> list[str]:
    model = app.chat.conversations
    return [model.index(r).data(Qt.ItemDataRole.DisplayRole) for r in range(model.rowCount())]


def test_enter_sends_and_shift_enter_adds_a_line(qloop: asyncio.AbstractEventLoop, qtbot: Any,
                                                 system: System, settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        window = app.chat.window
        qtbot.keyClicks(window.input, "first line")
        qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
        qtbot.keyClicks(window.input, "second <b>line</b>")
        assert app.chat.messages.bodies() == []  # Shift+Enter did not send
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
        expected = ["first line\nsecond <b>line</b>"]
        await wait_until(lambda: app.chat.messages.bodies() == expected)
        assert window.input.toPlainText() == ""
        # Bob sees it exactly as typed: plain text, markup included verbatim.
        await wait_until(lambda: [m.body for m in bob.store.messages(PUBLIC)] == expected)
        await close_all(app, bob)

    run(qloop, scenario())


def test_receive_in_the_open_chat_and_unread_plus_notification_elsewhere(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        app = make_app(system, settings)
        app.notifier.quiet = 0.0  # every message its own burst here (bursts: test_notifications.py)
        await log_in(app, qtbot, "alice", register=True)
        chat, chime, shown = app.chat, app.chime, app.notifier.shown
        alice_id = chat.session.user.id
        # In plain sight (room open, window active): shown, no unread, no sound.
        await (await bob.send("hello room")).acked
        await wait_until(lambda: chat.messages.bodies() == ["hello room"])
        assert chat.conversations.unread(PUBLIC) == 0 and chime.requests == 0 and shown == []
        # A private message while the room is open: unread count on bob, a notification, a chime.
        await (await bob.send("psst", to=alice_id)).acked
        await wait_until(lambda: chat.conversations.unread(bob.me.id) == 1)
        assert chime.requests == 1 and chat.messages.bodies() == ["hello room"]
        assert [(n.title, n.text, n.conversation) for n in shown] == [("bob", "psst", bob.me.id)]
        assert "bob  (1)" in sidebar_titles(app)
        assert chat.window.windowTitle() == "(1) ChaSe — alice" and app.notifier.unread == 1
        # Do not disturb (kept for this account): counted as unread, no notification, no chime.
        chat.window.mute.click()
        assert chat.prefs.do_not_disturb and chat.window.dnd_action.isChecked()
        await (await bob.send("psst again", to=alice_id)).acked
        await wait_until(lambda: chat.conversations.unread(bob.me.id) == 2)
        assert chime.requests == 1 and len(shown) == 1
        assert chat.window.windowTitle() == "(2) ChaSe — alice"
        chat.window.mute.click()
        # Opening bob's chat shows both messages and clears the count.
        chat.window.select_conversation(bob.me.id)
        await wait_until(lambda: chat.messages.bodies() == ["psst", "psst again"])
        assert chat.conversations.unread(bob.me.id) == 0 and chat.window.windowTitle() == "ChaSe — alice"
        # Window not active: even the open conversation notifies.
        other = type(chat.window)(chat.session.user, chat.conversations, chat.messages, muted=False)
        other.show()
        other.activateWindow()
        await wait_until(lambda: not chat.window.isActiveWindow())
        await (await bob.send("are you there?", to=alice_id)).acked
        await wait_until(lambda: chime.requests == 2)
        assert shown[-1].text == "are you there?"
        other.close()
        await close_all(app, bob)

    run(qloop, scenario())


def test_history_on_selecting_a_conversation_and_older_pages_on_scroll(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        # Server-readable private messages: this alice's desktop is a new device, and reading
        # encrypted ones from before it is the recovery key's job (tests/gui/test_e2ee.py).
        bob = await other_user(system, "bob", e2ee=False)
        carol = await other_user(system, "carol", e2ee=False)
        alice = await other_user(system, "alice", e2ee=False)
        for n in range(3):
            await (await bob.send(f"dm {n}", to=alice.me.id)).acked
        sent = [await carol.send(f"room {n}") for n in range(70)]
        await asyncio.gather(*(s.acked for s in sent))
        await alice.close()
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice")
        chat = app.chat
        # The latest page of the room is there at login.
        assert chat.messages.bodies() == [f"room {n}" for n in range(20, 70)]
        # Bob's messages are older than that page: they come when his chat is selected.
        row = chat.conversations.row_of(bob.me.id)
        chat.window.sidebar.setCurrentIndex(chat.conversations.index(row))
        await wait_until(lambda: chat.messages.bodies() == ["dm 0", "dm 1", "dm 2"])
        assert chat.window.sidebar.currentIndex().data(ConversationRoles.TITLE) == "bob"
        # Back to the room, scrolled to the top: the older page comes in above.
        chat.window.select_conversation(PUBLIC)
        await wait_until(lambda: chat.window.chat.verticalScrollBar().maximum() > 0)
        chat.window.chat.verticalScrollBar().setValue(0)
        await wait_until(lambda: len(chat.messages.bodies()) == 70)
        assert chat.messages.bodies() == [f"room {n}" for n in range(70)]
        await close_all(app, bob, carol)

    run(qloop, scenario())


def test_a_paste_over_the_limit_is_refused_with_the_limit_shown(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        window = app.chat.window
        limit = app.chat.client.limits.max_body_chars
        QApplication.clipboard().setText("x" * 100_000)
        window.input.paste()
        assert window.input.toPlainText() == ""
        assert f"at most {limit:,} characters" in window.notice.text() and window.notice.isVisible()
        # Typed (not pasted) past the limit: refused on Enter, text kept for editing.
        window.input.setPlainText("y" * (limit + 1))
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
        assert window.input.toPlainText() == "y" * (limit + 1)
        assert f"{limit + 1:,} characters" in window.notice.text()
        assert app.chat.client.outbox.pending() == []
        await close_all(app)

    run(qloop, scenario())
