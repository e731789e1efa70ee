"""Rooms as conversations like the others, against a real server: Ctrl+K finds them, they open
at the first unread message under the "New messages" line, and their membership events are
centred system lines that are neither unread nor a reason to chime."""

from __future__ import annotations

import asyncio
from typing import Any

from client.core.conversations import PUBLIC, Room
from client.core.rooms import Rooms
from client.qt.e2ee_widgets import ROOM_TEXT
from client.qt.models import MessageRoles
from client.qt.qt import QApplication, QColor, Qt, QTextEdit
from client.qt.theme import Colours
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app, other_user
from tests.helpers import wait_until
from tests.integration.system import System


def at_bottom(view: Any) -> bool:
    bar = view.verticalScrollBar()
    return bar.value() == bar.maximum()


async def room_with_alice(bob_rooms: Rooms, app: Any, name: str) -> int:
    """Bob makes a room and invites alice, who joins it from the rooms section."""
    chat = app.chat
    room = await bob_rooms.create(name)
    await bob_rooms.invite(room.id, chat.session.user.id)
    await wait_until(lambda: chat.rooms.rooms.rooms.get(room.id) is not None)
    await chat.rooms.join(room.id)
    await wait_until(lambda: chat._viewing == Room(room.id) and "alice joined" in chat.messages.bodies())
    return room.id


def test_ctrl_k_finds_a_room_by_name_and_opens_it_as_the_rooms_section_does(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        bob_rooms = Rooms(bob)
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        chat, window = app.chat, app.chat.window
        room_id = await room_with_alice(bob_rooms, app, "Project X")
        secret = await bob_rooms.create("Project Secret")
        await bob_rooms.invite(secret.id, chat.session.user.id)  # invited only: nothing to open yet
        window.select_conversation(PUBLIC)
        await (await bob.send("status update", Room(room_id))).acked
        await wait_until(lambda: chat.rooms.model.labels() == ["# Project X  (1)", "# Project Secret  — invited"])

        qtbot.keyClick(window.input, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
        assert window.switcher.isVisible()
        everything = [window.switcher.filtered.index(r, 0).data() for r in range(window.switcher.filtered.rowCount())]
        assert everything == ["All", "bob", "# Project X  (1)"]  # people, then rooms, marked "#"
        qtbot.keyClicks(window.switcher.search, "#")
        assert window.switcher.filtered.rowCount() == 1  # "#": rooms only
        window.switcher.search.clear()
        qtbot.keyClicks(window.switcher.search, "proj")
        assert window.switcher.results.currentIndex().data() == "# Project X  (1)"
        qtbot.keyClick(window.switcher.search, Qt.Key.Key_Return)
        # Exactly what a click in the rooms section does: the room open and selected there, the
        # people list unselected, its title, its messages, its unread count read.
        assert not window.switcher.isVisible()
        assert chat._viewing == Room(room_id) and chat.rooms.rooms.active == room_id
        assert chat.rooms.panel.current_room == room_id and not window.sidebar.currentIndex().isValid()
        assert window.title.text() == "# Project X"
        assert window.current_conversation == Room(room_id)
        assert app.e2ee_ui.bar.state.text() == ROOM_TEXT  # a room is not called the public room
        assert chat.messages.bodies()[-1] == "status update"
        assert chat.rooms.model.labels()[0] == "# Project X"
        assert window.focusWidget() is window.input
        # A notification of the room opens it the same way.
        window.select_conversation(PUBLIC)
        chat._open_from_notification(Room(room_id))
        assert chat._viewing == Room(room_id) and chat.rooms.panel.current_room == room_id
        await close_all(app, bob)

    run(qloop, scenario())


def test_a_room_opens_at_its_first_unread_message_under_the_new_messages_line(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        carol = await other_user(system, "carol", e2ee=False)
        bob_rooms = Rooms(bob)
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        chat, window = app.chat, app.chat.window
        room = Room(await room_with_alice(bob_rooms, app, "Project X"))
        for n in range(30):
            await (await bob.send(f"read {n}", room)).acked
        await wait_until(lambda: chat.messages.bodies()[-1:] == ["read 29"])
        window.select_conversation(PUBLIC)
        for n in range(25):
            await (await bob.send(f"unread {n}", room)).acked
            if n == 10:
                await bob_rooms.invite(room.id, carol.me.id)  # an event among them: not unread
        await wait_until(lambda: chat.rooms.rooms.unread.get(room.id) == 25)
        assert window.windowTitle().startswith("(25) ")
        chat.rooms.panel.select(room.id)  # a click in the rooms section
        view, model = window.chat, chat.messages
        row = model.bodies().index("unread 0")
        assert model.index(row).data(MessageRoles.UNREAD_BREAK) is True
        assert sum(bool(model.index(r).data(MessageRoles.UNREAD_BREAK)) for r in range(model.rowCount())) == 1
        await wait_until(lambda: view.indexAt(view.viewport().rect().topLeft()).row() == row)
        assert view.jump_button.isVisible()
        assert chat.rooms.rooms.unread.get(room.id, 0) == 0 and chat.rooms.model.labels() == ["# Project X"]
        assert not window.windowTitle().startswith("(")
        # Back and forth without news: it opens at the newest message, with no line.
        window.select_conversation(PUBLIC)
        chat.rooms.panel.select(room.id)
        await wait_until(lambda: at_bottom(view))
        assert not any(model.index(r).data(MessageRoles.UNREAD_BREAK) for r in range(model.rowCount()))
        # Open but the window in the background: counted, and the line marks where, as elsewhere.
        other = type(window)(chat.session.user, chat.conversations, chat.messages, muted=False)
        other.show()
        other.activateWindow()
        await wait_until(lambda: not window.isActiveWindow())
        await (await bob.send("while you were away", room)).acked
        await wait_until(lambda: chat.rooms.model.labels() == ["# Project X  (1)"])
        assert model.index(model.bodies().index("while you were away")).data(MessageRoles.UNREAD_BREAK) is True
        other.close()
        window.activateWindow()
        await wait_until(lambda: chat.rooms.model.labels() == ["# Project X"])
        await close_all(app, bob, carol)

    run(qloop, scenario())


def test_membership_events_are_centred_system_lines_never_unread_nor_chiming(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        carol = await other_user(system, "carol", e2ee=False)
        bob_rooms, carol_rooms = Rooms(bob), Rooms(carol)
        app = make_app(system, settings)
        app.notifier.quiet = 0.0  # every message its own burst here
        await log_in(app, qtbot, "alice", register=True)
        chat, window = app.chat, app.chat.window
        room = Room(await room_with_alice(bob_rooms, app, "Project X"))
        await (await bob.send("a message among events", room)).acked
        await wait_until(lambda: chat.messages.bodies()[-1:] == ["a message among events"])

        # Elsewhere while people come, go and the room is renamed: no count, no sound.
        window.select_conversation(PUBLIC)
        chimes, shown = app.chime.requests, len(app.notifier.shown)
        await bob_rooms.invite(room.id, carol.me.id)
        await carol_rooms.join(room.id)
        await bob_rooms.update(room.id, name="Launch", topic="next week")
        await carol_rooms.leave(room.id)
        await wait_until(lambda: "carol left" in [m.body for m in chat.client.store.messages(room)])
        await wait_until(lambda: chat.rooms.model.labels() == ["# Launch"])
        assert chat.rooms.rooms.unread.get(room.id, 0) == 0 and not window.windowTitle().startswith("(")
        assert (app.chime.requests, len(app.notifier.shown)) == (chimes, shown)
        # A message is news again.
        await (await bob.send("news", room)).acked
        await wait_until(lambda: chat.rooms.model.labels() == ["# Launch  (1)"])
        assert app.chime.requests == chimes + 1
        # An invitation for oneself asks for something: it is told (not counted unread).
        other = await bob_rooms.create("Elsewhere")
        await bob_rooms.invite(other.id, chat.session.user.id)
        await wait_until(lambda: len(app.notifier.shown) == shown + 2)
        assert (app.notifier.shown[-1].title, app.notifier.shown[-1].text) == (
            "bob", "invited you to a room: join or decline it under Rooms")
        assert app.notifier.shown[-1].conversation == Room(other.id)

        # In the room: the events are centred lines without a bubble or a sender header.
        chat.rooms.panel.select(room.id)
        view, model = window.chat, chat.messages
        await wait_until(lambda: at_bottom(view))
        bodies = model.bodies()
        renamed = next(row for row, body in enumerate(bodies) if body.startswith("bob renamed the room to Launch"))
        message = bodies.index("a message among events")
        assert model.index(renamed).data(MessageRoles.EVENT) is True
        assert model.index(message).data(MessageRoles.EVENT) is False
        view.scrollTo(model.index(renamed))
        event_rect = view.visualRect(model.index(renamed))
        laid = view.delegate.layout(event_rect, view.font(), model.index(renamed))
        assert laid.header.height() == 0
        assert abs(laid.body.center().x() - view.viewport().rect().center().x()) <= 2
        bubble = view.delegate.layout(view.visualRect(model.index(message)), view.font(), model.index(message))
        assert bubble.header.height() > 0 and bubble.bubble.left() < laid.bubble.left()
        # Drawn without a bubble behind it, in the muted colour.
        colours = Colours.from_palette(view.palette())
        image = view.viewport().grab().toImage()
        ratio = view.viewport().devicePixelRatioF()
        pixels = [QColor(image.pixel(int(x * ratio), int(y * ratio)))
                  for y in range(laid.bubble.top(), laid.bubble.bottom())
                  for x in range(laid.bubble.left(), laid.bubble.right())]
        base = view.palette().color(view.palette().ColorRole.Base).rgb()
        assert sum(p.rgb() == colours.other_bubble.rgb() for p in pixels) < len(pixels) // 20  # no bubble
        assert len(pixels) // 2 < sum(p.rgb() == base for p in pixels) < len(pixels)  # text on the background
        # The time on hover, and copied like any message.
        assert model.index(renamed).data(Qt.ItemDataRole.ToolTipRole)
        view.setCurrentIndex(model.index(renamed))
        view.copy_selection()
        assert QApplication.clipboard().text() == bodies[renamed]
        view.edit(model.index(renamed))  # a double click: its text, for selecting part of it
        editor = view.findChild(QTextEdit, "message_text")
        assert editor is not None and editor.toPlainText() == bodies[renamed]
        await close_all(app, bob, carol)

    run(qloop, scenario())
