"""Group rooms in the desktop client against a real server: the sidebar's rooms section with
unread counts, creating a room, inviting from the directory, members by role, leaving, and
membership events in the timeline."""

from __future__ import annotations

import asyncio
from typing import Any

from client.core.conversations import Room
from client.core.rooms import Rooms
from client.qt.qt import Qt
from client.qt.rooms_controller import NewRoom
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app, other_user
from tests.helpers import wait_until
from tests.integration.system import System


def test_rooms_in_the_sidebar_from_creation_to_leaving(qloop: asyncio.AbstractEventLoop, qtbot: Any,
                                                       system: System, settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        bob_rooms = Rooms(bob)
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        chat = app.chat
        rooms = chat.rooms
        panel = rooms.panel
        # Creating: the dialog's answer makes the room, which opens at once.
        rooms._ask_room = lambda _parent: NewRoom("Project X", "launch plans", False, False)
        qtbot.mouseClick(panel.create_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: rooms.model.labels() == ["# Project X"])
        room_id = rooms.rooms.joined()[0].id
        await wait_until(lambda: chat.messages.bodies() == ["alice created the room Project X"])
        assert chat.window.title.text() == "# Project X — launch plans"

        # Inviting bob, picked from the directory.
        offered: list[list[str]] = []

        def pick(_parent: Any, people: list[Any]) -> list[int]:
            offered.append([p.username for p in people])
            return [p.id for p in people if p.username == "bob"]

        rooms._ask_people = pick
        panel.select(room_id)
        qtbot.mouseClick(panel.invite_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: "alice invited bob" in chat.messages.bodies())
        assert offered == [["bob"]]
        await wait_until(lambda: [r.role for r in bob_rooms.rooms.values()] == ["invited"])
        await bob_rooms.join(room_id)
        await wait_until(lambda: "bob joined" in chat.messages.bodies())

        # A message while alice reads the public room: an unread count on the room, then read.
        chat.window.select_conversation(None)
        await (await bob.send("status update", Room(room_id))).acked
        await wait_until(lambda: rooms.model.labels() == ["# Project X  (1)"])
        assert chat.conversations.row_of(bob.me.id) is not None  # bob stays a person, not the room
        panel.select(room_id)
        await wait_until(lambda: chat.messages.bodies()[-1:] == ["status update"])
        assert rooms.model.labels() == ["# Project X"]
        # Sending in the open room reaches bob there, not in the public room.
        qtbot.keyClicks(chat.window.input, "thanks bob")
        qtbot.keyClick(chat.window.input, Qt.Key.Key_Return)
        await wait_until(lambda: "thanks bob" in [m.body for m in bob.store.messages(Room(room_id))])
        assert "thanks bob" not in [m.body for m in bob.store.messages(None)]

        # Members by role; the owner makes bob an admin from the dialog.
        dialog = await rooms.show_members(room_id)
        assert dialog.lines() == ["alice (you) — owner", "bob — member"]
        dialog.people.setCurrentRow(1)
        qtbot.mouseClick(dialog.make_admin, Qt.MouseButton.LeftButton)
        await wait_until(lambda: dialog.lines() == ["alice (you) — owner", "bob — admin"])
        await wait_until(lambda: "alice made bob an admin" in chat.messages.bodies())
        dialog.close()

        # The owner cannot leave: the reason is shown. Bob can, and alice sees it.
        qtbot.mouseClick(panel.leave_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: "hand the room over" in chat.window.notice.text())
        await bob_rooms.leave(room_id)
        await wait_until(lambda: "bob left" in chat.messages.bodies())
        await close_all(app, bob)

    run(qloop, scenario())


def test_per_room_mute_and_an_invitation_to_join(qloop: asyncio.AbstractEventLoop, qtbot: Any,
                                                 system: System, settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        bob_rooms = Rooms(bob)
        await bob_rooms.refresh()
        app = make_app(system, settings)
        app.notifier.quiet = 0.0  # every message its own burst here (bursts: test_notifications.py)
        await log_in(app, qtbot, "alice", register=True)
        chat, rooms, panel = app.chat, app.chat.rooms, app.chat.rooms.panel
        room = await bob_rooms.create("Quiet")
        await bob_rooms.invite(room.id, chat.session.user.id)
        await wait_until(lambda: rooms.model.labels() == ["# Quiet  — invited"])
        panel.select(room.id)
        assert not panel.join_button.isHidden() and panel.leave_button.text() == "Decline"
        qtbot.mouseClick(panel.join_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: rooms.model.labels() == ["# Quiet"])
        await wait_until(lambda: "alice joined" in chat.messages.bodies())
        # Muted: a message elsewhere counts as unread but makes no sound.
        chat.window.select_conversation(None)
        rooms.set_muted(room.id, True)
        before = app.chime.requests
        await (await bob.send("shh", Room(room.id))).acked
        await wait_until(lambda: rooms.model.labels() == ["# Quiet  (muted)  (1)"])
        assert app.chime.requests == before
        # Unmuted: the next one chimes.
        rooms.set_muted(room.id, False)
        await (await bob.send("ding", Room(room.id))).acked
        await wait_until(lambda: app.chime.requests == before + 1)
        await close_all(app, bob)

    run(qloop, scenario())
