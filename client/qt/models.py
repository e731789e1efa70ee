"""Qt item models for the sidebar and the chat view. They hold data, never widgets.

Every mutation is bracketed by begin/end calls so views update row by row (and keep their
scroll position) instead of resetting; only switching to another conversation resets.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from chase.schemas import ChatMessage, UserRef
from client.core.conversations import PUBLIC, ConversationId
from client.core.outbox import PendingMessage, PendingState
from client.qt.linkify import find_links
from client.qt.qt import QAbstractListModel, QColor, QFont, QIcon, QModelIndex, QPainter, QPixmap, Qt

ROOM_TITLE = "All"
UserRole = Qt.ItemDataRole.UserRole
_ROOT = QModelIndex()  # the invisible root of a flat list


class ConversationRoles:
    CONVERSATION = UserRole + 1
    ONLINE = UserRole + 2
    UNREAD = UserRole + 3
    TITLE = UserRole + 4
    MUTED = UserRole + 5


class MessageRoles:
    MESSAGE_ID = UserRole + 11
    SENDER = UserRole + 12
    BODY = UserRole + 13
    OWN = UserRole + 14
    #: The meta line after the sender: the time of day, or what is happening to a pending message.
    TIME = UserRole + 15
    #: The PendingState of a message not stored yet; None for a stored message.
    PENDING = UserRole + 16
    CLIENT_MSG_ID = UserRole + 17
    #: A date separator to draw above this row ("Today", "Monday 30 November"), or "".
    DAY_BREAK = UserRole + 18
    #: True on the first unread row: the "new messages" line is drawn above it.
    UNREAD_BREAK = UserRole + 19
    #: The http(s) links in the body: a list of client.qt.linkify.Link.
    LINKS = UserRole + 20
    #: The full local date and time (stored messages) or when it was written (pending ones).
    FULL_TIME = UserRole + 21
    #: True for a room's membership event ("alice invited bob"): drawn as a system line.
    EVENT = UserRole + 22


def day_label(day: date, today: date) -> str:
    """A date separator's text: Today, Yesterday, a weekday within a week, else the date."""
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    if today - timedelta(days=6) <= day < today:
        return day.strftime("%A")
    if day.year == today.year:
        return day.strftime("%A %d %B").replace(" 0", " ")
    return day.strftime("%A %d %B %Y").replace(" 0", " ")


def full_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%A %d %B %Y, %H:%M:%S")


@dataclass
class _Row:
    conversation: ConversationId
    title: str
    online: bool = False
    unread: int = 0
    muted: bool = False


def _dot(colour: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(colour))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pixmap)


class ConversationListModel(QAbstractListModel):
    """"All" first, then every other user by id, each with an online dot and unread count."""

    def __init__(self, me_id: int) -> None:
        super().__init__()
        self._me_id = me_id
        self._rows = [_Row(PUBLIC, ROOM_TITLE, online=True)]
        self._icons: dict[bool, QIcon] = {}
        #: While disconnected nobody's presence is known: every dot is grey.
        self._connected = True

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{row.title}  ({row.unread})" if row.unread else row.title
        online = row.online and self._connected
        if role == Qt.ItemDataRole.DecorationRole and row.conversation is not PUBLIC:
            return self._icon(online)
        if role == Qt.ItemDataRole.FontRole and (row.unread or row.muted):
            font = QFont()
            font.setBold(bool(row.unread))
            font.setItalic(row.muted)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            muted = " Notifications are muted." if row.muted else ""
            if row.conversation is PUBLIC:
                return f"The public room.{muted}"
            if not self._connected:
                return f"{row.title}: not known while you are offline.{muted}"
            return f"{row.title} is {'online' if row.online else 'offline'}.{muted}"
        return {
            ConversationRoles.CONVERSATION: row.conversation,
            ConversationRoles.ONLINE: online,
            ConversationRoles.MUTED: row.muted,
            ConversationRoles.UNREAD: row.unread,
            ConversationRoles.TITLE: row.title,
        }.get(role)

    def _icon(self, online: bool) -> QIcon:
        if online not in self._icons:
            self._icons[online] = _dot("#2e9d45" if online else "#b0b0b0")
        return self._icons[online]

    def set_users(self, users: list[UserRef], online: set[int]) -> None:
        """Show these users (oneself excluded), replacing the list; unread counts are kept."""
        unread = {r.conversation: r.unread for r in self._rows}
        muted = {r.conversation: r.muted for r in self._rows}
        self.beginResetModel()
        self._rows = [self._rows[0]] + [
            _Row(u.id, u.username, u.id in online, unread.get(u.id, 0), muted.get(u.id, False))
            for u in sorted(users, key=lambda u: u.id) if u.id != self._me_id
        ]
        self.endResetModel()

    def add_user(self, user: UserRef, online: bool) -> None:
        """Add a user not yet listed (someone who registered after the list was loaded)."""
        if user.id == self._me_id or self.row_of(user.id) is not None:
            return
        position = bisect.bisect_left([r.conversation for r in self._rows[1:]], user.id) + 1
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.insert(position, _Row(user.id, user.username, online))
        self.endInsertRows()

    def set_online(self, user_id: int, online: bool) -> None:
        self._update(user_id, online=online)

    def set_online_ids(self, online: set[int]) -> None:
        for row in self._rows[1:]:
            self._update(row.conversation, online=row.conversation in online)

    def set_connected(self, connected: bool) -> None:
        """Connected or not: while not, presence is unknown and shown grey for everyone."""
        if connected != self._connected:
            self._connected = connected
            if self._rows:
                self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1))

    def set_muted(self, conversation: ConversationId, muted: bool) -> None:
        self._update(conversation, muted=muted)

    def total_unread(self) -> int:
        return sum(r.unread for r in self._rows)

    def add_unread(self, conversation: ConversationId, count: int = 1) -> None:
        row = self.row_of(conversation)
        if row is not None:
            self._update(conversation, unread=self._rows[row].unread + count)

    def clear_unread(self, conversation: ConversationId) -> None:
        self._update(conversation, unread=0)

    def unread(self, conversation: ConversationId) -> int:
        row = self.row_of(conversation)
        return self._rows[row].unread if row is not None else 0

    def row_of(self, conversation: ConversationId) -> int | None:
        return next((i for i, r in enumerate(self._rows) if r.conversation == conversation), None)

    def conversation_at(self, row: int) -> ConversationId:
        return self._rows[row].conversation

    def title(self, conversation: ConversationId) -> str:
        row = self.row_of(conversation)
        return self._rows[row].title if row is not None else f"user #{conversation}"

    def _update(self, conversation: ConversationId, **changes: object) -> None:
        row = self.row_of(conversation)
        if row is None:
            return
        for name, value in changes.items():
            setattr(self._rows[row], name, value)
        index = self.index(row)
        self.dataChanged.emit(index, index)


def pending_label(pending: PendingMessage) -> str:
    """The meta line of a message not stored yet, in place of its time."""
    if pending.state is PendingState.SENDING:
        return "sending…"
    if pending.state is PendingState.WAITING:
        return "not sent yet — will retry when connected"
    if pending.state is PendingState.RETRYING:
        return f"not sent yet — will retry: {pending.reason}"
    return f"not sent: {pending.reason}"


class MessageListModel(QAbstractListModel):
    """The messages of the open conversation: stored ones oldest first, each once (by id), then
    one's own messages not stored yet (pending), in the order they were sent.

    Bodies are returned as plain strings for the delegate to draw as plain text: nothing a
    user typed is ever interpreted as HTML.
    """

    def __init__(self, me_id: int, *, today: Callable[[], date] = date.today) -> None:
        super().__init__()
        self._me_id = me_id
        self._today = today
        self._messages: list[ChatMessage] = []
        self._ids: set[int] = set()
        self._pending: list[PendingMessage] = []  # rows after the stored ones
        #: The first unread message's id: the "new messages" line goes above it.
        self._unread_from: int | None = None

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(self._messages) + len(self._pending)

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        # "Editable" only so that a view can open a read-only text box to select part of a
        # message; setData does not exist here, nothing is ever written back.
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        row = index.row()
        if role == MessageRoles.DAY_BREAK:
            day, before = self._day(row), self._day(row - 1) if row else None
            return day_label(day, self._today()) if day != before else ""
        if role == MessageRoles.UNREAD_BREAK:
            return row < len(self._messages) and self._messages[row].id == self._unread_from
        if role == MessageRoles.LINKS:
            return find_links(self._body(row))
        if row >= len(self._messages):
            return self._pending_data(self._pending[row - len(self._messages)], role)
        message = self._messages[row]
        own = message.sender.id == self._me_id
        if role == Qt.ItemDataRole.DisplayRole:
            if message.event is not None:
                return f"{message.body}  {self.time_label(message)}"
            return f"{self.sender_label(message)}  {self.time_label(message)}\n{message.body}"
        if role in (Qt.ItemDataRole.ToolTipRole, MessageRoles.FULL_TIME):
            return full_time(message.created_at)
        return {
            MessageRoles.MESSAGE_ID: message.id,
            MessageRoles.SENDER: self.sender_label(message),
            MessageRoles.BODY: message.body,
            MessageRoles.OWN: own,
            MessageRoles.TIME: self.time_label(message),
            MessageRoles.CLIENT_MSG_ID: message.client_msg_id,
            MessageRoles.EVENT: message.event is not None,
        }.get(role)

    def _day(self, row: int) -> date:
        if row < len(self._messages):
            return self._messages[row].created_at.astimezone().date()
        return self._pending[row - len(self._messages)].queued_at.astimezone().date()

    def _body(self, row: int) -> str:
        if row < len(self._messages):
            return self._messages[row].body
        return self._pending[row - len(self._messages)].body

    @staticmethod
    def _pending_data(pending: PendingMessage, role: int) -> object:
        if role == Qt.ItemDataRole.DisplayRole:
            return f"You  {pending_label(pending)}\n{pending.body}"
        if role == MessageRoles.FULL_TIME:
            return full_time(pending.queued_at)
        if role == Qt.ItemDataRole.ToolTipRole:
            written = pending.queued_at.astimezone().strftime("%H:%M:%S")
            if pending.state is PendingState.FAILED:
                return f"Written at {written}; the server refused it: {pending.reason}"
            return f"Written at {written}; not stored on the server yet"
        return {
            MessageRoles.SENDER: "You",
            MessageRoles.BODY: pending.body,
            MessageRoles.OWN: True,
            MessageRoles.TIME: pending_label(pending),
            MessageRoles.PENDING: pending.state,
            MessageRoles.CLIENT_MSG_ID: pending.client_msg_id,
        }.get(role)

    def sender_label(self, message: ChatMessage) -> str:
        return "You" if message.sender.id == self._me_id else message.sender.username

    @staticmethod
    def time_label(message: ChatMessage) -> str:
        """The local time of day the message was stored."""
        return message.created_at.astimezone().strftime("%H:%M")

    def set_messages(self, messages: list[ChatMessage], pending: list[PendingMessage] | None = None) -> None:
        """Show another conversation: its stored messages (in id order), then its pending ones."""
        self.beginResetModel()
        self._messages = list(messages)
        self._ids = {m.id for m in messages}
        self._pending = list(pending or [])
        self._unread_from = None
        self.endResetModel()

    def mark_unread_from(self, message_id: int | None) -> int | None:
        """Draw the "new messages" line above ``message_id`` (None: no line); returns its row."""
        old = self.row_of(self._unread_from) if self._unread_from is not None else None
        self._unread_from = message_id
        new = self.row_of(message_id) if message_id is not None else None
        for row in {old, new} - {None}:
            index = self.index(row)  # type: ignore[arg-type]
            self.dataChanged.emit(index, index)
        return new

    @property
    def unread_from(self) -> int | None:
        return self._unread_from

    def first_unread(self, count: int) -> int | None:
        """The id of the first of the last ``count`` messages from others (None if there are none).

        Membership events are not counted: they are never unread (docs/client.md).
        """
        if count <= 0:
            return None
        others = [m.id for m in self._messages if m.sender.id != self._me_id and m.event is None]
        return others[-count] if len(others) >= count else (others[0] if others else None)

    def row_of(self, message_id: int) -> int | None:
        row = bisect.bisect_left(self._messages, message_id, key=lambda m: m.id)
        return row if row < len(self._messages) and self._messages[row].id == message_id else None

    def add(self, messages: list[ChatMessage]) -> int:
        """Insert messages at their id position, skipping known ones; returns how many were new."""
        added = 0
        for message in sorted(messages, key=lambda m: m.id):
            if message.id in self._ids:
                continue
            row = bisect.bisect_left(self._messages, message.id, key=lambda m: m.id)
            self.beginInsertRows(QModelIndex(), row, row)
            self._messages.insert(row, message)
            self._ids.add(message.id)
            self.endInsertRows()
            if row + 1 < self.rowCount():
                # The row below may lose its date separator now that this one comes first.
                below = self.index(row + 1)
                self.dataChanged.emit(below, below)
            added += 1
        return added

    def show_pending(self, pending: PendingMessage) -> None:
        """Append a new pending message as the last row, or update the one with its id."""
        row = self._pending_row(pending.client_msg_id)
        if row is None:
            row = self.rowCount()
            self.beginInsertRows(QModelIndex(), row, row)
            self._pending.append(pending)
            self.endInsertRows()
            return
        self._pending[row - len(self._messages)] = pending
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def settle(self, client_msg_id: str, message: ChatMessage) -> None:
        """The pending message is stored: show ``message`` in its place in id order, once."""
        row = self._pending_row(client_msg_id)
        stored = len(self._messages)
        if row == stored and message.id not in self._ids and (not self._messages or self._messages[-1].id < message.id):
            # The usual case: the first pending row is exactly where the stored message goes,
            # so the same row turns into it (no row moves, the view keeps its place).
            self._pending.pop(0)
            self._messages.append(message)
            self._ids.add(message.id)
            index = self.index(row)
            self.dataChanged.emit(index, index)
            return
        if row is not None:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._pending[row - stored]
            self.endRemoveRows()
        self.add([message])

    def _pending_row(self, client_msg_id: str) -> int | None:
        return next((len(self._messages) + i for i, p in enumerate(self._pending)
                     if p.client_msg_id == client_msg_id), None)

    def message_ids(self) -> list[int]:
        """The ids of the stored messages shown, in row order."""
        return [m.id for m in self._messages]

    def bodies(self) -> list[str]:
        """The bodies of the stored messages shown, in row order (pending ones excluded)."""
        return [m.body for m in self._messages]

    def pending(self) -> list[PendingMessage]:
        """The pending messages shown after the stored ones, in row order."""
        return list(self._pending)
