"""Glue between the client core's rooms (:class:`client.core.rooms.Rooms`) and the window:
the sidebar's rooms section, the room dialogs, and opening a room in the chat view.

A room opens in the same chat view as the public room and private chats (its conversation is
``Room(id)``), so sending, history, pending messages and membership events ("alice invited
bob", shown as messages) work as they do there. The dialogs are asked through injectable
functions, so tests drive them without a modal loop.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chase.logging import get_logger
from chase.schemas import UserRef
from client.core.conversations import ConversationId, Room
from client.core.rooms import Rooms
from client.qt.qt import QDialog, QObject, QWidget
from client.qt.rooms_model import RoomListModel
from client.qt.rooms_panel import CreateRoomDialog, InviteDialog, MembersDialog, RoomsPanel
from client.qt.tasks import UiTasks

if TYPE_CHECKING:
    from client.qt.chat_controller import ChatController

log = get_logger(__name__)


@dataclass(frozen=True)
class NewRoom:
    name: str
    topic: str
    open: bool
    whole_history: bool


def ask_new_room(parent: QWidget) -> NewRoom | None:
    dialog = CreateRoomDialog(parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return NewRoom(dialog.name.text(), dialog.topic.text(), dialog.open.isChecked(), dialog.whole_history.isChecked())


def ask_invitees(parent: QWidget, users: list[UserRef]) -> list[int]:
    dialog = InviteDialog(users, parent)
    return dialog.chosen() if dialog.exec() == QDialog.DialogCode.Accepted else []


class RoomsController(QObject):
    def __init__(self, chat: ChatController, *,
                 ask_room: Callable[[QWidget], NewRoom | None] = ask_new_room,
                 ask_people: Callable[[QWidget, list[UserRef]], list[int]] = ask_invitees) -> None:
        super().__init__()
        self.chat = chat
        self.rooms = Rooms(chat.client)
        self.model = RoomListModel()
        self.panel = RoomsPanel(self.model)
        self.members_dialog: MembersDialog | None = None
        self._ask_room, self._ask_people = ask_room, ask_people
        self._tasks = UiTasks(lambda text: self.chat.window.show_notice(text), "client.rooms_task_failed")
        chat.window.add_sidebar_section(self.panel)
        chat.window.switcher.add_source(self.model)  # Ctrl+K finds rooms too
        self._unsubscribe = self.rooms.subscribe(self._show)
        p = self.panel
        p.room_selected.connect(self.open)
        p.create_requested.connect(self._create_clicked)
        p.join_requested.connect(lambda room_id: self._spawn(self.join(room_id)))
        p.invite_requested.connect(self._invite_clicked)
        p.members_requested.connect(lambda room_id: self._spawn(self.show_members(room_id)))
        p.leave_requested.connect(lambda room_id: self._spawn(self.leave(room_id)))
        p.mute_toggled.connect(self.set_muted)
        chat.window.conversation_selected.connect(self._on_conversation)
        # From the switcher or a notification: as if the room were clicked in this section.
        chat.window.room_requested.connect(self.panel.select)
        self._spawn(self.rooms.refresh())

    # --- what the user asks for ---------------------------------------------------------------

    def open(self, room_id: int) -> None:
        """Show the room in the chat view (its unread messages are read there, as in any
        conversation: see ChatController._select)."""
        room = self.rooms.rooms.get(room_id)
        if room is None:
            return
        self.rooms.active = room_id
        window = self.chat.window
        window.sidebar.setCurrentIndex(window.sidebar.model().index(-1, 0))  # no person selected
        self.panel.select(room_id)
        window.conversation_selected.emit(Room(room_id))
        window.title.setText(f"# {room.name}" + (f" — {room.topic}" if room.topic else ""))

    async def create(self, name: str, topic: str = "", *, open_: bool = False, whole_history: bool = False) -> int:
        room = await self.rooms.create(name, topic or None, open=open_, history="all" if whole_history else "joined")
        self.open(room.id)
        return room.id

    async def invite(self, room_id: int, user_ids: list[int]) -> None:
        for user_id in user_ids:
            await self.rooms.invite(room_id, user_id)

    async def join(self, room_id: int) -> None:
        await self.rooms.join(room_id)
        self.open(room_id)

    async def leave(self, room_id: int) -> None:
        await self.rooms.leave(room_id)
        if self.rooms.active == room_id:
            self.rooms.active = None
            self.chat.window.select_conversation(None)

    async def show_members(self, room_id: int) -> MembersDialog:
        room = self.rooms.rooms[room_id]
        members = await self.rooms.members(room_id)
        dialog = MembersDialog(room, members, self.chat.session.user.id, self.chat.window)

        async def then_refresh(change: Coroutine[Any, Any, object]) -> None:
            await change
            dialog.room = self.rooms.rooms.get(room_id, dialog.room)
            dialog.set_members(await self.rooms.members(room_id))

        dialog.role_requested.connect(lambda uid, role: self._spawn(then_refresh(self.rooms.set_role(room_id, uid, role))))
        dialog.remove_requested.connect(lambda uid: self._spawn(then_refresh(self.rooms.remove(room_id, uid))))
        dialog.update_requested.connect(lambda name, topic: self._spawn(then_refresh(
            self.rooms.update(room_id, name=name or None, topic=topic))))
        self.members_dialog = dialog
        dialog.show()
        return dialog

    def set_muted(self, room_id: int, muted: bool) -> None:
        """No sound for this room's messages (unread counts still show)."""
        (self.chat.muted_conversations.add if muted else self.chat.muted_conversations.discard)(Room(room_id))
        self._show()

    def _create_clicked(self) -> None:
        wanted = self._ask_room(self.chat.window)
        if wanted is not None:
            self._spawn(self.create(wanted.name, wanted.topic, open_=wanted.open, whole_history=wanted.whole_history))

    def _invite_clicked(self, room_id: int) -> None:
        model = self.chat.conversations
        people = []
        for row in range(1, model.rowCount()):  # row 0 is the public room
            user_id = model.conversation_at(row)
            if isinstance(user_id, int):
                people.append(UserRef(id=user_id, username=model.title(user_id)))
        chosen = self._ask_people(self.chat.window, people)
        if chosen:
            self._spawn(self.invite(room_id, chosen))

    # --- keeping the view current -------------------------------------------------------------

    def _on_conversation(self, conversation: ConversationId) -> None:
        if not isinstance(conversation, Room):
            self.rooms.active = None
            self.panel.select(None)

    def _show(self) -> None:
        muted = {c.id for c in self.chat.muted_conversations if isinstance(c, Room)}
        self.model.set_rooms(list(self.rooms.rooms.values()), self.rooms.unread, muted)
        active = self.rooms.active
        if active is not None and active not in self.rooms.rooms:
            # Removed (or left elsewhere): the room is gone from the sidebar.
            self.rooms.active = None
        elif active is not None and self.panel.current_room != active:
            # The list was rebuilt (a room came or went): keep the open room selected, quietly.
            selection = self.panel.list.selectionModel()
            selection.blockSignals(True)
            self.panel.select(active)
            selection.blockSignals(False)
            self.panel.refresh_buttons()

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        self._tasks.spawn(coroutine)

    def close(self) -> None:
        self._unsubscribe()
        self._tasks.cancel_all()
