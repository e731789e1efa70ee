"""The rooms section of the sidebar and the room dialogs. Views only: they emit what the user
asks for; :class:`client.qt.rooms_controller.RoomsController` does it."""

from __future__ import annotations

from chase.schemas import RoomInfo, RoomMember, UserRef
from client.qt.qt import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QModelIndex,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)
from client.qt.rooms_model import RoomListModel, RoomRoles
from client.qt.theme import emphasised


class RoomsPanel(QWidget):
    """"Rooms" with a list (unread counts, invitations) and what one can do with the selected."""

    room_selected = pyqtSignal(int)
    create_requested = pyqtSignal()
    join_requested = pyqtSignal(int)
    invite_requested = pyqtSignal(int)
    members_requested = pyqtSignal(int)
    leave_requested = pyqtSignal(int)
    mute_toggled = pyqtSignal(int, bool)

    def __init__(self, model: RoomListModel) -> None:
        super().__init__()
        self.setObjectName("rooms")
        self.model = model
        self.header = QLabel("Rooms")
        emphasised(self.header, 1.0)  # a font, not a style sheet: the colour follows the theme
        self.create_button = QPushButton("New…")
        self.list = QListView()
        self.list.setModel(model)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setMaximumHeight(160)
        self.join_button = QPushButton("Join")
        self.invite_button = QPushButton("Invite…")
        self.members_button = QPushButton("Members…")
        self.leave_button = QPushButton("Leave")
        self.mute = QCheckBox("Mute this room")
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.create_button)
        actions = QHBoxLayout()
        for button in (self.join_button, self.invite_button, self.members_button, self.leave_button):
            actions.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addLayout(top)
        layout.addWidget(self.list)
        layout.addLayout(actions)
        layout.addWidget(self.mute)
        self.create_button.clicked.connect(self.create_requested)
        self.list.selectionModel().currentChanged.connect(self._on_current)
        self.join_button.clicked.connect(lambda: self._emit_for_current(self.join_requested))
        self.invite_button.clicked.connect(lambda: self._emit_for_current(self.invite_requested))
        self.members_button.clicked.connect(lambda: self._emit_for_current(self.members_requested))
        self.leave_button.clicked.connect(lambda: self._emit_for_current(self.leave_requested))
        self.mute.clicked.connect(self._on_mute)
        model.modelReset.connect(self.refresh_buttons)
        model.dataChanged.connect(self.refresh_buttons)
        self.refresh_buttons()

    @property
    def current_room(self) -> int | None:
        index = self.list.currentIndex()
        return index.data(RoomRoles.ROOM_ID) if index.isValid() else None

    def select(self, room_id: int | None) -> None:
        row = self.model.row_of(room_id) if room_id is not None else None
        self.list.setCurrentIndex(self.model.index(row) if row is not None else QModelIndex())

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.refresh_buttons()
        if current.isValid() and not current.data(RoomRoles.INVITED):
            self.room_selected.emit(current.data(RoomRoles.ROOM_ID))

    def _emit_for_current(self, signal: pyqtSignal) -> None:  # type: ignore[valid-type]
        if self.current_room is not None:
            signal.emit(self.current_room)  # type: ignore[attr-defined]

    def _on_mute(self, checked: bool) -> None:
        if self.current_room is not None:
            self.mute_toggled.emit(self.current_room, checked)

    def refresh_buttons(self) -> None:
        index = self.list.currentIndex()
        chosen = index.isValid()
        invited = bool(chosen and index.data(RoomRoles.INVITED))
        self.join_button.setVisible(invited)
        for button in (self.invite_button, self.members_button):
            button.setEnabled(chosen and not invited)
        self.leave_button.setText("Decline" if invited else "Leave")
        self.leave_button.setEnabled(chosen)
        self.mute.setEnabled(chosen and not invited)
        self.mute.setChecked(bool(chosen and index.data(RoomRoles.MUTED)))


class CreateRoomDialog(QDialog):
    """Name, topic, open to all, whole history for new members."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New room")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. Project X")
        self.topic = QLineEdit()
        self.open = QCheckBox("Anyone may join (open room)")
        self.whole_history = QCheckBox("New members read the whole history")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        form.addRow("Topic", self.topic)
        form.addRow(self.open)
        form.addRow(self.whole_history)
        form.addRow(buttons)


class InviteDialog(QDialog):
    """Pick people from the directory (several at once)."""

    def __init__(self, users: list[UserRef], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Invite people")
        self.people = QListWidget()
        self.people.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for user in users:
            item = QListWidgetItem(user.username)
            item.setData(Qt.ItemDataRole.UserRole, user.id)
            self.people.addItem(item)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.people)
        layout.addWidget(buttons)

    def chosen(self) -> list[int]:
        return [item.data(Qt.ItemDataRole.UserRole) for item in self.people.selectedItems()]


class MembersDialog(QDialog):
    """A room's members by role; the owner and admins get the actions their role allows."""

    role_requested = pyqtSignal(int, str)   # user id, role ("owner" hands the room over)
    remove_requested = pyqtSignal(int)
    update_requested = pyqtSignal(str, str)  # name, topic

    def __init__(self, room: RoomInfo, members: list[RoomMember], me_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Members of {room.name}")
        self.room, self.me_id = room, me_id
        self.people = QListWidget()
        self.set_members(members)
        self.make_admin = QPushButton("Make admin")
        self.make_member = QPushButton("Make member")
        self.hand_over = QPushButton("Hand over ownership")
        self.remove = QPushButton("Remove")
        self.name = QLineEdit(room.name)
        self.topic = QLineEdit(room.topic or "")
        self.save = QPushButton("Save name and topic")
        owner, admin = room.role == "owner", room.role in ("owner", "admin")
        for button in (self.make_admin, self.make_member, self.hand_over):
            button.setVisible(owner)
        self.remove.setVisible(admin)
        for widget in (self.name, self.topic, self.save):
            widget.setEnabled(owner)
        actions = QHBoxLayout()
        for button in (self.make_admin, self.make_member, self.hand_over, self.remove):
            actions.addWidget(button)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Topic", self.topic)
        layout = QVBoxLayout(self)
        layout.addWidget(self.people)
        layout.addLayout(actions)
        layout.addLayout(form)
        layout.addWidget(self.save)
        self.make_admin.clicked.connect(lambda: self._for_chosen(lambda uid: self.role_requested.emit(uid, "admin")))
        self.make_member.clicked.connect(lambda: self._for_chosen(lambda uid: self.role_requested.emit(uid, "member")))
        self.hand_over.clicked.connect(lambda: self._for_chosen(lambda uid: self.role_requested.emit(uid, "owner")))
        self.remove.clicked.connect(lambda: self._for_chosen(self.remove_requested.emit))
        self.save.clicked.connect(lambda: self.update_requested.emit(self.name.text(), self.topic.text()))

    def set_members(self, members: list[RoomMember]) -> None:
        self.people.clear()
        order = {"owner": 0, "admin": 1, "member": 2, "invited": 3}
        for member in sorted(members, key=lambda m: (order[m.role], m.user.username.lower())):
            you = " (you)" if member.user.id == self.me_id else ""
            item = QListWidgetItem(f"{member.user.username}{you} — {member.role}")
            item.setData(Qt.ItemDataRole.UserRole, member.user.id)
            self.people.addItem(item)

    def lines(self) -> list[str]:
        return [self.people.item(i).text() for i in range(self.people.count())]

    def _for_chosen(self, act) -> None:  # noqa: ANN001
        item = self.people.currentItem()
        if item is not None:
            act(item.data(Qt.ItemDataRole.UserRole))
