"""Glue between the chat client (Qt-free) and the main window: events in, models and view out.

Client events arrive on the asyncio loop, which qasync runs inside Qt's event loop, so they
may touch widgets directly. Window signals start coroutines on that same loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from chase.logging import get_logger
from chase.schemas import ChatMessage, UserRef
from client.core.api import AuthApi, AuthSession
from client.core.chat import ChatClient
from client.core.conversations import PUBLIC, ConversationId, Room
from client.core.errors import ClientError
from client.core.events import (
    ClientEvent,
    ClientState,
    Connected,
    MessagesAdded,
    PendingAdded,
    PendingChanged,
    PendingStored,
    PresenceChanged,
    ServerError,
    SessionEnded,
    Source,
    StateChanged,
)
from client.core.notify import Attention, should_notify
from client.qt.account_prefs import AccountPrefs, KeptMutes
from client.qt.main_window import MainWindow, UnsentChoice, ask_about_unsent
from client.qt.models import ConversationListModel, MessageListModel
from client.qt.notifier import Notifier
from client.qt.qt import QObject, QSettings, QWidget, pyqtSignal
from client.qt.rooms_controller import RoomsController
from client.qt.tasks import UiTasks
from client.qt.theme import ThemeChoice, ThemeManager

log = get_logger(__name__)

#: How long logging out may wait for the server before the window goes anyway.
LOGOUT_BOUND = 5.0


class AskUnsent(Protocol):
    """Asks the user what to do with unsent messages (see :func:`ask_about_unsent`)."""

    def __call__(self, parent: QWidget, count: int, leaving: str, *, kept: bool) -> UnsentChoice: ...


def plain_reason(reason: str) -> str:
    """Why the connection is down, for people (the core's reason names sockets and codes)."""
    lowered = reason.lower()
    if "certificate" in lowered:
        return "the server's certificate is not trusted"
    if "session" in lowered:
        return "your session has ended"
    if "closed" == lowered:
        return "you logged out"
    if "connection lost" in lowered:
        return "the connection to the server was lost"
    return "the server cannot be reached"


def status_text(event: StateChanged) -> str:
    """The status line for a connection state, in plain words (the reason itself goes in a tooltip)."""
    if event.state is ClientState.CONNECTED:
        return "Connected"
    if event.state is ClientState.CONNECTING:
        return "Connecting to the server…"
    if event.state is ClientState.RECONNECTING:
        if event.attempt:
            return (f"Reconnecting (attempt {event.attempt} of {event.max_attempts}): "
                    f"{plain_reason(event.reason or 'connection lost')}.")
        return "Reconnecting: the connection to the server was lost."
    why = plain_reason(event.reason) if event.reason else ""
    if event.next_attempt_at is not None:
        return (f"Offline: {why or 'the server cannot be reached'}. Trying again at "
                f"{event.next_attempt_at.strftime('%H:%M:%S')}, or press Retry.")
    return f"Offline: {why}." if why else "Offline."


class ChatController(QObject):
    session_ended = pyqtSignal(str)
    logged_out = pyqtSignal()

    def __init__(self, client: ChatClient, api: AuthApi, session: AuthSession, users: list[UserRef],
                 notifier: Notifier, prefs: AccountPrefs, *, window_active: Callable[[], bool] | None = None,
                 ask_unsent: AskUnsent = ask_about_unsent, settings: QSettings | None = None,
                 theme: ThemeManager | None = None, open_url: Callable[[str], object] | None = None) -> None:
        super().__init__()
        self.client, self.api, self.session = client, api, session
        self.notifier, self.chime, self.theme = notifier, notifier.chime, theme
        #: This account's drafts and notification choices (kept across restarts).
        self.prefs = prefs
        me = session.user
        self.conversations = ConversationListModel(me.id)
        self.conversations.set_users(users, client.online)
        for user in users:
            if prefs.muted(user.id):
                self.conversations.set_muted(user.id, True)
        self.conversations.set_muted(PUBLIC, prefs.muted(PUBLIC))
        self.messages = MessageListModel(me.id)
        self._ask_unsent = ask_unsent
        self.window = MainWindow(me, self.conversations, self.messages, muted=prefs.do_not_disturb,
                                 may_close=lambda: self.may_leave("quit"), settings=settings,
                                 previews=prefs.previews, theme=theme.choice if theme else ThemeChoice.SYSTEM,
                                 is_muted=prefs.muted, open_url=open_url)
        self._window_active = window_active or self.window.isActiveWindow
        self._viewing: ConversationId = PUBLIC
        self._loading_older = False
        self._tasks = UiTasks(lambda text: self.window.show_notice(text), "client.ui_task_failed")
        self.messages.set_messages(client.store.messages(PUBLIC), client.pending(PUBLIC))
        if client.limits is not None:
            self.window.set_max_chars(client.limits.max_body_chars)
        self.window.set_status("Connected" if client.state is ClientState.CONNECTED else "Connecting to the server…")
        self._unsubscribe = client.subscribe(self._on_event)
        self._wire()
        #: Conversations whose messages make no sound (rooms muted from their panel); kept in
        #: the account's settings like the others.
        self.muted_conversations: set[ConversationId] = KeptMutes(prefs)
        self.rooms = RoomsController(self)
        # A room counts unread like any conversation: unless open with the window in front.
        self.rooms.rooms.in_sight = lambda room_id: self._viewing == Room(room_id) and self._window_active()
        self._unsubscribe_rooms = self.rooms.rooms.subscribe(self._count_unread)
        self._show_draft(PUBLIC)

    def _wire(self) -> None:
        w = self.window
        w.conversation_selected.connect(self._select)
        w.send_requested.connect(lambda text: self._spawn(self._send(text)))
        w.older_requested.connect(self._older)
        w.retry_requested.connect(self._retry)
        w.logout_requested.connect(lambda: self.may_leave("log out") and self._spawn(self._logout()))
        w.mute_toggled.connect(self.prefs.set_do_not_disturb)
        w.previews_toggled.connect(self.prefs.set_previews)
        w.conversation_muted.connect(self._mute_conversation)
        w.mute_here_toggled.connect(lambda muted: self._mute_conversation(self._viewing, muted))
        if self.theme is not None:
            w.theme_chosen.connect(self.theme.apply)
        w.activated.connect(self._on_activated)
        w.input.textChanged.connect(self._keep_draft)
        self.conversations.dataChanged.connect(self._count_unread)
        self.conversations.modelReset.connect(self._count_unread)
        self.notifier.clicked.connect(self._open_from_notification)
        self.notifier.tray_activated.connect(self._bring_up)

    def _on_activated(self) -> None:
        self._mark_read(self._viewing)

    def _unread(self, conversation: ConversationId) -> int:
        """Unread messages of a conversation: people and "All" in the sidebar's model, rooms in
        the rooms core (which counts them itself)."""
        if isinstance(conversation, Room):
            return self.rooms.rooms.unread.get(conversation.id, 0)
        return self.conversations.unread(conversation)

    def _mark_read(self, conversation: ConversationId) -> None:
        if isinstance(conversation, Room):
            self.rooms.rooms.mark_read(conversation.id)
        else:
            self.conversations.clear_unread(conversation)

    def _count_unread(self, *_: object) -> None:
        rooms = getattr(self, "rooms", None)  # not there yet while the window is being built
        total = self.conversations.total_unread() + (sum(rooms.rooms.unread.values()) if rooms else 0)
        self.window.set_unread_total(total)
        self.notifier.set_unread(total)

    def _mute_conversation(self, conversation: ConversationId, muted: bool) -> None:
        if isinstance(conversation, Room):
            self.rooms.set_muted(conversation.id, muted)  # kept through muted_conversations
        else:
            self.prefs.set_muted(conversation, muted)
            self.conversations.set_muted(conversation, muted)
        if conversation == self._viewing:
            self.window.set_muted_here(muted)

    def _bring_up(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def _open_from_notification(self, conversation: ConversationId) -> None:
        self._bring_up()
        self.window.select_conversation(conversation)

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        self._tasks.spawn(coroutine)

    # --- from the client ----------------------------------------------------------------

    def _on_event(self, event: ClientEvent) -> None:
        match event:
            case MessagesAdded():
                self._on_messages(event)
            case PendingAdded(message=pending) if pending.conversation == self._viewing:
                self.messages.show_pending(pending)
                self.window.chat.jump_to_latest()  # one's own message: show it, wherever one was reading
            case PendingChanged(message=pending) if pending.conversation == self._viewing:
                # Sending, waiting, retrying or refused: the bubble says so (no notice needed).
                self.messages.show_pending(pending)
            case PendingStored(client_msg_id=client_msg_id, conversation=conversation, message=message):
                if conversation == self._viewing:
                    self.messages.settle(client_msg_id, message)
            case PresenceChanged(user_id=user_id, username=username, online=online):
                self.conversations.add_user(UserRef(id=user_id, username=username), online)
                self.conversations.set_online(user_id, online)
            case Connected(hello=hello):
                self.conversations.set_connected(True)
                self.conversations.set_online_ids(set(hello.online_user_ids))
                self.window.set_max_chars(hello.limits.max_body_chars)
            case StateChanged():
                if event.state is not ClientState.CONNECTED:
                    # Who is online is unknown while we are not: no one shows green.
                    self.conversations.set_connected(False)
                # Still trying, slowly: say when, and offer to try now.
                self.window.set_status(status_text(event), offer_retry=event.next_attempt_at is not None
                                       and event.state is ClientState.OFFLINE, details=event.reason)
            case ServerError(message=message):
                self.window.show_notice(message)
            case SessionEnded(reason=reason):
                self.session_ended.emit(reason)

    def _on_messages(self, event: MessagesAdded) -> None:
        conversation, me = event.conversation, self.session.user.id
        if conversation is not PUBLIC and not isinstance(conversation, Room):
            other = event.messages[0]
            peer = other.sender if other.sender.id != me else None
            if peer is not None:
                self.conversations.add_user(peer, peer.id in self.client.online)
                if self.prefs.muted(peer.id):
                    self.conversations.set_muted(peer.id, True)
        live = event.source in (Source.LIVE, Source.SYNC)
        # Others' messages are news; membership events ("bob joined") are not (docs/client.md):
        # no unread count, no "new messages" line, no sound, except an invitation for oneself.
        news = [m for m in event.messages if m.sender.id != me and m.event is None] if live else []
        in_sight = conversation == self._viewing and self._window_active()
        if conversation == self._viewing:
            self.messages.add(event.messages)
            if news and not in_sight and self.messages.unread_from is None:
                # Arrived while the person was away: the "new messages" line marks where.
                self.messages.mark_unread_from(news[0].id)
        if live:
            self._tell_invitations(conversation, event.messages)
        if not news:
            return
        if not in_sight and not isinstance(conversation, Room):  # rooms: counted by the rooms core
            self.conversations.add_unread(conversation, len(news))
        attention = self._attention(conversation)
        told = [m for m in news if should_notify(m, me, attention)]
        if told:
            last = told[-1]
            self.notifier.news(conversation, self._where(conversation), last.sender.username, last.body,
                               previews=self.prefs.previews)

    def _attention(self, conversation: ConversationId) -> Attention:
        return Attention(viewing=self._viewing, window_active=self._window_active(),
                         muted=self.prefs.do_not_disturb or self.prefs.muted(conversation))

    def _tell_invitations(self, conversation: ConversationId, messages: list[ChatMessage]) -> None:
        """Someone invited the user to a room: the one membership event that asks for something
        (Join or Decline in the rooms section), so it is notified, though never counted unread."""
        me = self.session.user.id
        for message in messages:
            event = message.event
            if (event is not None and event.action == "invited" and event.user is not None
                    and event.user.id == me and should_notify(message, me, self._attention(conversation))):
                # Said without the room's name: the invitation comes before the room is listed.
                self.notifier.news(conversation, message.sender.username, message.sender.username,
                                   "invited you to a room: join or decline it under Rooms", previews=True)

    def _where(self, conversation: ConversationId) -> str:
        """The conversation's name in a notification."""
        if conversation is PUBLIC:
            return "All"
        if isinstance(conversation, Room):
            room = self.rooms.rooms.rooms.get(conversation.id)
            return f"#{room.name}" if room is not None else "a room"
        return self.conversations.title(conversation)

    # --- from the window ----------------------------------------------------------------

    def _keep_draft(self) -> None:
        # Written at every change, so a crash or a restart loses nothing typed.
        self.prefs.set_draft(self._viewing, self.window.input.toPlainText())

    def _show_draft(self, conversation: ConversationId) -> None:
        self.window.input.set_text(self.prefs.draft(conversation))

    def _select(self, conversation: ConversationId) -> None:
        # The box holds the draft of the conversation being left (already kept by _keep_draft).
        self.prefs.set_draft(self._viewing, self.window.input.toPlainText())
        self._viewing = conversation
        self._show_draft(conversation)
        self.window.set_muted_here(self.prefs.muted(conversation))
        unread = self._unread(conversation)
        self.messages.set_messages(self.client.store.messages(conversation), self.client.pending(conversation))
        # Open at the newest message, or at the first unread one under a "new messages" line.
        self.window.chat.open_at(self.messages.mark_unread_from(self.messages.first_unread(unread)))
        self._mark_read(conversation)
        if not self.client.store.history_loaded(conversation):
            self._spawn(self._load(conversation, older=False))

    def _older(self) -> None:
        if self._loading_older or not self.client.store.has_more_before(self._viewing):
            return
        self._loading_older = True
        self._spawn(self._load(self._viewing, older=True))

    async def _load(self, conversation: ConversationId, *, older: bool) -> None:
        try:
            await self.client.load_history(conversation, older=older)
        finally:
            if older:
                self._loading_older = False

    async def _send(self, text: str) -> None:
        # Shown at once as pending (PendingAdded), then as stored when acknowledged.
        await self.client.send(text, self._viewing)

    def _retry(self) -> None:
        self.window.set_status("Retrying…")
        self.client.retry()

    def may_leave(self, leaving: str) -> bool:
        """Before logging out or quitting: with messages unsent, ask the user what to do with them."""
        unsent = self.client.unsent
        if not unsent:
            return True
        choice = self._ask_unsent(self.window, unsent, leaving, kept=self.client.keeps_unsent)
        if choice is UnsentChoice.DISCARD:
            self.client.discard_unsent()
        return choice is not UnsentChoice.STAY

    async def _logout(self) -> None:
        self.window.set_status("Logging out…")
        try:
            # Bounded: a server that does not answer must not keep the person waiting.
            await asyncio.wait_for(self.api.logout(self.session), LOGOUT_BOUND)
        except ClientError as exc:
            log.info("client.logout_failed", code=str(exc.code))  # the session ends locally anyway
        except TimeoutError:
            log.info("client.logout_timed_out")
        self.logged_out.emit()

    async def close(self) -> None:
        """Disconnect, drop the window and release the HTTP client; the caller shows the login."""
        self.prefs.sync()
        self._unsubscribe_rooms()
        self.window.save_geometry()
        self.notifier.set_unread(0)
        self._unsubscribe()
        self.rooms.close()
        self._tasks.cancel_all()
        await self.client.close()
        await self.api.aclose()
        self.window.hide()
        self.window.deleteLater()
