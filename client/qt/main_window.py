"""The main window: sidebar of conversations, chat view, input, status line. A view only.

It emits what the user asks for (select a conversation, send, load older, retry, log out,
mute, theme) and is told what to show by :class:`client.qt.chat_controller.ChatController`.

Keyboard: Ctrl+K jumps to a conversation or a room by name (Escape leaves it), Ctrl+Q quits, End jumps
to the latest message. The window opens sized to the screen it is on and then where the person
left it (kept in the settings, checked against the screens there are now).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from chase.schemas import UserRef
from client.core.conversations import PUBLIC, ConversationId, Room
from client.qt.chat_view import ChatView
from client.qt.models import ConversationListModel, ConversationRoles, MessageListModel
from client.qt.qt import (
    QAbstractItemModel,
    QAbstractItemView,
    QAction,
    QActionGroup,
    QApplication,
    QByteArray,
    QCheckBox,
    QCloseEvent,
    QConcatenateTablesProxyModel,
    QDialog,
    QEvent,
    QGuiApplication,
    QHBoxLayout,
    QKeyEvent,
    QKeySequence,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QModelIndex,
    QPlainTextEdit,
    QPoint,
    QPushButton,
    QSettings,
    QShortcut,
    QSortFilterProxyModel,
    QSplitter,
    Qt,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)
from client.qt.theme import Colours, ThemeChoice, emphasised, tint

GEOMETRY_KEY = "window/main_geometry"
#: Share of the screen's free area the window takes the first time.
SCREEN_SHARE = 0.7


class UnsentChoice(Enum):
    KEEP = "keep"          # leave; they are sent at the next login
    DISCARD = "discard"    # leave and forget them
    STAY = "stay"          # do not leave


def ask_about_unsent(parent: QWidget, count: int, leaving: str, *, kept: bool = True) -> UnsentChoice:
    """Ask what to do with ``count`` unsent messages before ``leaving`` ("log out", "quit").

    ``kept``: they are kept on this computer if the user leaves; else they would be lost.
    """
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Messages not sent yet")
    box.setText(f"{count} message{'s are' if count != 1 else ' is'} not sent yet.")
    if kept:
        box.setInformativeText("Kept on this computer, they are sent the next time you log in.")
        keep = box.addButton(f"Keep and {leaving}", QMessageBox.ButtonRole.AcceptRole)
    else:
        box.setInformativeText("Another ChaSe window of this account keeps unsent messages on this "
                               "computer, so these would be lost.")
        keep = box.addButton(f"Lose them and {leaving}", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton(f"Discard and {leaving}", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton("Stay", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(keep)
    box.exec()
    clicked = box.clickedButton()
    return UnsentChoice.KEEP if clicked is keep else UnsentChoice.DISCARD if clicked is discard else UnsentChoice.STAY


class MessageInput(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line; text over the limit is refused, not cut."""

    submitted = pyqtSignal(str)
    refused = pyqtSignal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setPlaceholderText("Write a message — Enter sends, Shift+Enter adds a line")
        self.setTabChangesFocus(True)
        self.setFixedHeight(72)
        #: The server's limit (HelloFrame.limits.max_body_chars); None until connected.
        self.max_chars: int | None = None

    def event(self, event: QEvent) -> bool:
        # Text boxes take Ctrl+K for themselves (delete to the end of the line on X11); here it
        # belongs to the window: jump to a conversation.
        if (event.type() == QEvent.Type.ShortcutOverride and event.key() == Qt.Key.Key_K  # type: ignore[attr-defined]
                and event.modifiers() == Qt.KeyboardModifier.ControlModifier):  # type: ignore[attr-defined]
            event.ignore()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.submit()
            return
        super().keyPressEvent(event)

    def insertFromMimeData(self, source) -> None:  # noqa: ANN001, N802 - Qt's name
        # Paste as plain text only, and refuse a paste that would break the limit.
        text = source.text() if source.hasText() else ""
        length = len(self.toPlainText()) - len(self.textCursor().selectedText()) + len(text)
        if self.max_chars is not None and length > self.max_chars:
            self.refused.emit(self._too_long(length))
            return
        self.insertPlainText(text)

    def set_text(self, text: str) -> None:
        """Replace the text (a conversation's draft), with the cursor at its end."""
        self.setPlainText(text)
        self.moveCursor(self.textCursor().MoveOperation.End)

    def submit(self) -> None:
        text = self.toPlainText()
        if not text.strip():
            return
        if self.max_chars is not None and len(text) > self.max_chars:
            self.refused.emit(self._too_long(len(text)))
            return
        self.submitted.emit(text)
        self.clear()

    def _too_long(self, length: int) -> str:
        return (f"Too long: {length:,} characters. The server accepts at most {self.max_chars:,} "
                "characters in one message.")


class SwitcherFilter(QSortFilterProxyModel):
    """The rows whose title contains what was typed; "#" first asks for rooms only."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._needle = ""
        self._rooms_only = False

    def set_text(self, text: str) -> None:
        text = text.strip()
        self._rooms_only = text.startswith("#")
        self._needle = text.lstrip("#").strip().casefold()
        self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:  # noqa: N802 - Qt's name
        index = self.sourceModel().index(row, 0, parent)
        title = index.data(ConversationRoles.TITLE)
        if title is None:  # an invitation to a room: nothing to open yet
            return False
        if self._rooms_only and not isinstance(index.data(ConversationRoles.CONVERSATION), Room):
            return False
        return self._needle in title.casefold()


class QuickSwitcher(QDialog):
    """Ctrl+K: type part of a name (a person, "All", a room), Enter opens it, Escape goes back.

    Rooms read "# name" as in the sidebar; typing "#" first leaves only rooms.
    """

    chosen = pyqtSignal(object)  # ConversationId

    def __init__(self, parent: QWidget, conversations: ConversationListModel) -> None:
        super().__init__(parent)
        self.setWindowTitle("Jump to a conversation or room")
        self.setObjectName("switcher")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Type a name or #room — Enter opens it, Escape goes back")
        self.search.setClearButtonEnabled(True)
        self.sources = QConcatenateTablesProxyModel(self)
        self.sources.addSourceModel(conversations)
        self.filtered = SwitcherFilter(self)
        self.filtered.setSourceModel(self.sources)
        self.results = QListView()
        self.results.setModel(self.filtered)
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.results)
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._choose)
        self.results.activated.connect(lambda _index: self._choose())
        self.search.installEventFilter(self)
        self.resize(360, 320)

    def add_source(self, model: QAbstractItemModel) -> None:
        """List ``model``'s rows too (after those already listed); it answers ConversationRoles."""
        self.sources.addSourceModel(model)

    def open_search(self) -> None:
        self.search.clear()
        self._filter("")
        self.open()
        self.search.setFocus()

    def _filter(self, text: str) -> None:
        self.filtered.set_text(text)
        if self.filtered.rowCount():
            self.results.setCurrentIndex(self.filtered.index(0, 0))

    def _choose(self) -> None:
        index = self.results.currentIndex()
        if index.isValid():
            self.chosen.emit(index.data(ConversationRoles.CONVERSATION))
            self.accept()

    def eventFilter(self, watched: object, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        # Up and Down move through the results while typing.
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            key = event.key()  # type: ignore[attr-defined]
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up) and self.filtered.rowCount():
                row = self.results.currentIndex().row() + (1 if key == Qt.Key.Key_Down else -1)
                self.results.setCurrentIndex(self.filtered.index(max(0, min(row, self.filtered.rowCount() - 1)), 0))
                return True
        return super().eventFilter(watched, event)


class MainWindow(QMainWindow):
    conversation_selected = pyqtSignal(object)  # ConversationId
    #: A room is to be opened (from the switcher or a notification): the rooms section opens it.
    room_requested = pyqtSignal(int)
    send_requested = pyqtSignal(str)
    older_requested = pyqtSignal()
    retry_requested = pyqtSignal()
    logout_requested = pyqtSignal()
    #: Do not disturb (no notifications, no chime) switched on or off.
    mute_toggled = pyqtSignal(bool)
    previews_toggled = pyqtSignal(bool)
    #: (conversation, muted): notifications of one conversation switched off or on.
    conversation_muted = pyqtSignal(object, bool)
    #: Notifications > Mute this conversation: the one open, whatever kind it is.
    mute_here_toggled = pyqtSignal(bool)
    theme_chosen = pyqtSignal(object)  # ThemeChoice
    activated = pyqtSignal()
    closing = pyqtSignal()

    def __init__(self, me: UserRef, conversations: ConversationListModel, messages: MessageListModel,
                 *, muted: bool, may_close: Callable[[], bool] | None = None, settings: QSettings | None = None,
                 previews: bool = True, theme: ThemeChoice = ThemeChoice.SYSTEM,
                 is_muted: Callable[[ConversationId], bool] | None = None,
                 open_url: Callable[[str], object] | None = None) -> None:
        super().__init__()
        #: Asked before the window closes; False keeps it open (e.g. the user chose to stay).
        self._may_close = may_close or (lambda: True)
        self._settings = settings
        self._is_muted = is_muted or (lambda _conversation: False)
        self.setObjectName("main")
        self._base_title = f"ChaSe — {me.username}"
        self.setWindowTitle(self._base_title)
        self.conversations = conversations
        self.sidebar = QListView()
        self.sidebar.setModel(conversations)
        self.sidebar.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.sidebar.setMinimumWidth(150)
        self.sidebar.setAccessibleName("Conversations")
        self.sidebar.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.chat = ChatView(open_url)
        self.chat.setModel(messages)
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        emphasised(self.title, 1.3)
        self.title.setContentsMargins(4, 4, 4, 4)
        self.input = MessageInput()
        self.send_button = QPushButton("Send")
        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setTextFormat(Qt.TextFormat.PlainText)
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)  # a long reason wraps rather than being cut off
        self.retry_button = QPushButton("Retry")
        self.retry_button.hide()
        self.mute = QCheckBox("Do not disturb")
        self.mute.setToolTip("No notifications and no sound for any conversation")
        self.mute.setChecked(muted)
        self.logout_button = QPushButton("Log out")
        self.me_label = QLabel(f"Logged in as {me.username}")
        self.me_label.setTextFormat(Qt.TextFormat.PlainText)
        self.switcher = QuickSwitcher(self, conversations)
        #: What the chat view shows (a room too, which the people list does not hold).
        self._current: ConversationId = PUBLIC
        self._build()
        self._menus(previews, theme)
        self._connect()
        self._restore_geometry()
        self._recolour()
        self.select_conversation(PUBLIC)

    def _build(self) -> None:
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(6, 6, 0, 6)
        side_layout.addWidget(self.me_label)
        side_layout.addWidget(self.sidebar, 1)
        self._sections = side_layout.count()
        side_layout.addWidget(self.mute)
        side_layout.addWidget(self.logout_button)
        self._side_layout = side_layout
        entry = QHBoxLayout()
        entry.addWidget(self.input, 1)
        entry.addWidget(self.send_button)
        main = QWidget()
        main_layout = QVBoxLayout(main)
        main_layout.setContentsMargins(0, 6, 6, 6)
        main_layout.addWidget(self.title)
        main_layout.addWidget(self.chat, 1)
        main_layout.addWidget(self.notice)
        main_layout.addLayout(entry)
        splitter = QSplitter()
        splitter.addWidget(side)
        splitter.addWidget(main)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([190, 670])
        self.setCentralWidget(splitter)
        bar = self.statusBar()
        bar.addWidget(self.status, 1)
        bar.addPermanentWidget(self.retry_button)

    def _menus(self, previews: bool, theme: ThemeChoice) -> None:
        bar = self.menuBar()
        chat = bar.addMenu("&Chat")
        self.jump_action = chat.addAction("&Jump to a conversation or room…")
        self.jump_action.setShortcut(QKeySequence("Ctrl+K"))
        self.jump_action.triggered.connect(self.switcher.open_search)
        chat.addSeparator()
        chat.addAction("&Log out").triggered.connect(self.logout_requested)
        quit_action = chat.addAction("&Quit")
        quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        quit_action.triggered.connect(self.close)
        notifications = bar.addMenu("&Notifications")
        self.dnd_action = notifications.addAction("&Do not disturb")
        self.dnd_action.setCheckable(True)
        self.dnd_action.setChecked(self.mute.isChecked())
        self.dnd_action.toggled.connect(self.mute.setChecked)
        self.mute.toggled.connect(self.dnd_action.setChecked)
        self.previews_action = notifications.addAction("Show message &text in notifications")
        self.previews_action.setCheckable(True)
        self.previews_action.setChecked(previews)
        self.previews_action.toggled.connect(self.previews_toggled)
        self.mute_conversation_action = notifications.addAction("&Mute this conversation")
        self.mute_conversation_action.setCheckable(True)
        self.mute_conversation_action.toggled.connect(self.mute_here_toggled)
        view = bar.addMenu("&View")
        themes = view.addMenu("&Theme")
        group = QActionGroup(self)
        self.theme_actions: dict[ThemeChoice, QAction] = {}
        for choice, label in ((ThemeChoice.SYSTEM, "Follow the &system"), (ThemeChoice.LIGHT, "&Light"),
                              (ThemeChoice.DARK, "&Dark")):
            action = themes.addAction(label)
            action.setCheckable(True)
            action.setChecked(choice is theme)
            group.addAction(action)
            action.triggered.connect(lambda _checked, c=choice: self.theme_chosen.emit(c))
            self.theme_actions[choice] = action
        view.addAction("Jump to the &latest message").triggered.connect(self.chat.jump_to_latest)

    def _sidebar_menu(self, point: QPoint) -> None:
        index = self.sidebar.indexAt(point)
        if not index.isValid():
            return
        conversation = index.data(ConversationRoles.CONVERSATION)
        muted = self._is_muted(conversation)
        menu = QMenu(self)
        action = menu.addAction("Unmute notifications" if muted else "Mute notifications")
        action.triggered.connect(lambda: self.conversation_muted.emit(conversation, not muted))
        menu.exec(self.sidebar.viewport().mapToGlobal(point))

    def _connect(self) -> None:
        self.conversation_selected.connect(self._remember)  # first, before anyone else is told
        self.sidebar.customContextMenuRequested.connect(self._sidebar_menu)
        self.switcher.chosen.connect(self._jump_to)
        self.switcher.rejected.connect(self.activateWindow)
        QShortcut(QKeySequence("Ctrl+L"), self, activated=self.input.setFocus)
        self.sidebar.selectionModel().currentChanged.connect(self._on_current)
        self.input.submitted.connect(self._on_submitted)
        self.input.refused.connect(self.show_notice)
        self.send_button.clicked.connect(self.input.submit)
        self.chat.reached_top.connect(self.older_requested)
        self.retry_button.clicked.connect(self.retry_requested)
        self.logout_button.clicked.connect(self.logout_requested)
        self.mute.toggled.connect(self.mute_toggled)

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            conversation = current.data(ConversationRoles.CONVERSATION)
            self.title.setText(current.data(ConversationRoles.TITLE) if conversation is not PUBLIC
                               else "All — the public room")
            self.show_notice("")
            self.mute_conversation_action.blockSignals(True)
            self.mute_conversation_action.setChecked(self._is_muted(conversation))
            self.mute_conversation_action.blockSignals(False)
            self.conversation_selected.emit(conversation)

    def _jump_to(self, conversation: ConversationId) -> None:
        self.select_conversation(conversation)
        self.activateWindow()  # back from the switcher's window, also where no window manager does it
        self.input.setFocus()

    def _on_submitted(self, text: str) -> None:
        self.show_notice("")
        self.send_requested.emit(text)

    def _remember(self, conversation: ConversationId) -> None:
        self._current = conversation

    @property
    def current_conversation(self) -> ConversationId:
        """The conversation the chat view shows: "All", a person's id, or a Room."""
        return self._current

    def select_conversation(self, conversation: ConversationId) -> None:
        if isinstance(conversation, Room):
            self.room_requested.emit(conversation.id)
            return
        row = self.conversations.row_of(conversation)
        if row is not None:
            self.sidebar.setCurrentIndex(self.conversations.index(row))

    def add_sidebar_section(self, widget: QWidget) -> None:
        """Add a section (e.g. the rooms) to the sidebar, below the people."""
        self._side_layout.insertWidget(self._sections, widget)
        self._sections += 1

    def set_status(self, text: str, *, offer_retry: bool = False, details: str = "") -> None:
        """The status line, in plain words; ``details`` (the technical reason) show on hover."""
        self.status.setText(text)
        self.status.setToolTip(details)
        self.retry_button.setVisible(offer_retry)

    def set_unread_total(self, total: int) -> None:
        self.setWindowTitle(f"({total}) {self._base_title}" if total else self._base_title)

    def set_muted_here(self, muted: bool) -> None:
        """Reflect the open conversation's mute switch (after a change from the sidebar)."""
        self.mute_conversation_action.blockSignals(True)
        self.mute_conversation_action.setChecked(muted)
        self.mute_conversation_action.blockSignals(False)

    def set_theme(self, choice: ThemeChoice) -> None:
        self.theme_actions[choice].setChecked(True)

    def _recolour(self) -> None:
        tint(self.notice, Colours.from_palette(QApplication.palette()).error)

    # --- size and place -------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        saved = self._settings.value(GEOMETRY_KEY) if self._settings is not None else None
        if isinstance(saved, QByteArray) and self.restoreGeometry(saved) and self._on_a_screen():
            return
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(860, 560)
            return
        free = screen.availableGeometry()
        width = max(min(free.width(), 640), int(free.width() * SCREEN_SHARE))
        height = max(min(free.height(), 420), int(free.height() * SCREEN_SHARE))
        self.resize(min(width, free.width()), min(height, free.height()))
        self.move(free.left() + (free.width() - self.width()) // 2, free.top() + (free.height() - self.height()) // 2)

    def _on_a_screen(self) -> bool:
        # A window saved on a monitor that is gone would open out of sight.
        frame = self.frameGeometry()
        return any(screen.availableGeometry().intersects(frame) for screen in QGuiApplication.screens())

    def save_geometry(self) -> None:
        if self._settings is not None:
            self._settings.setValue(GEOMETRY_KEY, self.saveGeometry())
            self._settings.sync()

    def show_notice(self, text: str) -> None:
        """Show a problem with what the user just did (empty text hides it)."""
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def set_max_chars(self, limit: int) -> None:
        self.input.max_chars = limit

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self.activated.emit()
        elif event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._recolour()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if not self._may_close():
            event.ignore()
            return
        self.save_geometry()
        self.closing.emit()
        super().closeEvent(event)
