"""The sidebar's rooms section as a Qt model (no widgets): rooms first, then invitations.

A joined room also answers :class:`~client.qt.models.ConversationRoles` (its conversation
``Room(id)`` and its name as the title), so the quick switcher lists rooms beside people.
"""

from __future__ import annotations

from chase.schemas import RoomInfo
from client.core.conversations import Room
from client.qt.models import ConversationRoles
from client.qt.qt import QAbstractListModel, QFont, QModelIndex, Qt

_ROOT = QModelIndex()


class RoomRoles:
    # Apart from ConversationRoles, which this model answers too.
    ROOM_ID = Qt.ItemDataRole.UserRole + 31
    UNREAD = Qt.ItemDataRole.UserRole + 32
    INVITED = Qt.ItemDataRole.UserRole + 33
    MUTED = Qt.ItemDataRole.UserRole + 34


def room_label(room: RoomInfo, unread: int = 0, *, muted: bool = False) -> str:
    """How a room reads in the sidebar: ``# name  (unread)``, marked when invited or muted."""
    if room.role == "invited":
        return f"# {room.name}  — invited"
    label = f"# {room.name}"
    if muted:
        label += "  (muted)"
    return f"{label}  ({unread})" if unread else label


class RoomListModel(QAbstractListModel):
    def __init__(self) -> None:
        super().__init__()
        self._rooms: list[RoomInfo] = []
        self._unread: dict[int, int] = {}
        self._muted: set[int] = set()

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(self._rooms)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        room = self._rooms[index.row()]
        unread = self._unread.get(room.id, 0)
        if role == Qt.ItemDataRole.DisplayRole:
            return room_label(room, unread, muted=room.id in self._muted)
        if role == Qt.ItemDataRole.ToolTipRole:
            return room.topic or room.name
        if role == Qt.ItemDataRole.FontRole and (unread or room.role == "invited"):
            font = QFont()
            font.setBold(unread > 0)
            font.setItalic(room.role == "invited")
            return font
        return {
            RoomRoles.ROOM_ID: room.id,
            RoomRoles.UNREAD: unread,
            RoomRoles.INVITED: room.role == "invited",
            RoomRoles.MUTED: room.id in self._muted,
            # An invitation is no conversation yet: nothing to jump to.
            ConversationRoles.CONVERSATION: Room(room.id) if room.role != "invited" else None,
            ConversationRoles.TITLE: room.name if room.role != "invited" else None,
            ConversationRoles.UNREAD: unread,
            ConversationRoles.MUTED: room.id in self._muted,
        }.get(role)

    def set_rooms(self, rooms: list[RoomInfo], unread: dict[int, int], muted: set[int]) -> None:
        """Show these rooms: joined ones by name, then invitations."""
        ordered = sorted(rooms, key=lambda r: (r.role == "invited", r.name.lower(), r.id))
        if [r.id for r in ordered] == [r.id for r in self._rooms]:
            # Same rows: update in place, so the selection stays where it is.
            self._rooms, self._unread, self._muted = ordered, dict(unread), set(muted)
            if self._rooms:
                self.dataChanged.emit(self.index(0), self.index(len(self._rooms) - 1))
            return
        self.beginResetModel()
        self._rooms, self._unread, self._muted = ordered, dict(unread), set(muted)
        self.endResetModel()

    def room_at(self, row: int) -> RoomInfo:
        return self._rooms[row]

    def row_of(self, room_id: int) -> int | None:
        return next((i for i, r in enumerate(self._rooms) if r.id == room_id), None)

    def labels(self) -> list[str]:
        return [self.data(self.index(row)) for row in range(self.rowCount())]  # type: ignore[misc]
