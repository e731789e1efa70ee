"""The main window: sidebar of conversations, chat view, input, status line. A view only.

It emits what the user asks for (select a conversation, send, load older, retry, log out,
mute) and is told what to show by :class:`client.qt.chat_controller.ChatController`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from chase.schemas import UserRef
from client.core.conversations import PUBLIC, ConversationId
from client.qt.chat_view import ChatView
from client.qt.models import ConversationListModel, ConversationRoles, MessageListModel
from client.qt.qt import (
    QAbstractItemView,
    QCheckBox,
    QCloseEvent,
    QEvent,
    QHBoxLayout,
    QKeyEvent,
    QLabel,
    QListView,
    QMainWindow,
    QMessageBox,
    QModelIndex,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    Qt,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)


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


class MainWindow(QMainWindow):
    conversation_selected = pyqtSignal(object)  # ConversationId
    send_requested = pyqtSignal(str)
    older_requested = pyqtSignal()
    retry_requested = pyqtSignal()
    logout_requested = pyqtSignal()
    mute_toggled = pyqtSignal(bool)
    activated = pyqtSignal()
    closing = pyqtSignal()

    def __init__(self, me: UserRef, conversations: ConversationListModel, messages: MessageListModel,
                 *, muted: bool, may_close: Callable[[], bool] | None = None) -> None:
        super().__init__()
        #: Asked before the window closes; False keeps it open (e.g. the user chose to stay).
        self._may_close = may_close or (lambda: True)
        self.setObjectName("main")
        self.setWindowTitle(f"ChaSe — {me.username}")
        self.conversations = conversations
        self.sidebar = QListView()
        self.sidebar.setModel(conversations)
        self.sidebar.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.sidebar.setMinimumWidth(150)
        self.chat = ChatView()
        self.chat.setModel(messages)
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setStyleSheet("font-size: 13pt; font-weight: bold; padding: 4px;")
        self.input = MessageInput()
        self.send_button = QPushButton("Send")
        self.notice = QLabel()
        self.notice.setTextFormat(Qt.TextFormat.PlainText)
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #b00020;")
        self.notice.hide()
        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.retry_button = QPushButton("Retry")
        self.retry_button.hide()
        self.mute = QCheckBox("Mute")
        self.mute.setChecked(muted)
        self.logout_button = QPushButton("Log out")
        self.me_label = QLabel(f"Logged in as {me.username}")
        self.me_label.setTextFormat(Qt.TextFormat.PlainText)
        self._build()
        self._connect()
        self.resize(860, 560)
        self.select_conversation(PUBLIC)

    def _build(self) -> None:
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(6, 6, 0, 6)
        side_layout.addWidget(self.me_label)
        side_layout.addWidget(self.sidebar, 1)
        side_layout.addWidget(self.mute)
        side_layout.addWidget(self.logout_button)
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

    def _connect(self) -> None:
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
            self.conversation_selected.emit(conversation)

    def _on_submitted(self, text: str) -> None:
        self.show_notice("")
        self.send_requested.emit(text)

    @property
    def current_conversation(self) -> ConversationId:
        index = self.sidebar.currentIndex()
        return index.data(ConversationRoles.CONVERSATION) if index.isValid() else PUBLIC

    def select_conversation(self, conversation: ConversationId) -> None:
        row = self.conversations.row_of(conversation)
        if row is not None:
            self.sidebar.setCurrentIndex(self.conversations.index(row))

    def set_status(self, text: str, *, offer_retry: bool = False) -> None:
        self.status.setText(text)
        self.retry_button.setVisible(offer_retry)

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

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if not self._may_close():
            event.ignore()
            return
        self.closing.emit()
        super().closeEvent(event)
