"""The login / register window: a form, two buttons, and errors in plain words.

The window does no networking: it emits :attr:`LoginWindow.submitted` with a
:class:`LoginForm`, and the app (``client/qt/app.py``) answers with :meth:`show_error` or by
opening the main window. The last server and username are kept in QSettings; the password
never is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from client.core.endpoints import DEFAULT_SERVER
from client.qt.qt import (
    QApplication,
    QCloseEvent,
    QEvent,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSettings,
    Qt,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)
from client.qt.theme import Colours, emphasised, tint

SERVER_KEY = "login/server"
USERNAME_KEY = "login/username"


class Mode(StrEnum):
    LOGIN = "login"
    REGISTER = "register"


@dataclass(frozen=True)
class LoginForm:
    mode: Mode
    server: str
    username: str
    password: str = field(repr=False)


class LoginWindow(QWidget):
    submitted = pyqtSignal(object)  # LoginForm
    #: The person pressed Cancel (or Escape) while a login was under way.
    cancelled = pyqtSignal()
    closing = pyqtSignal()

    def __init__(self, settings: QSettings, default_server: str = DEFAULT_SERVER) -> None:
        super().__init__()
        self._settings = settings
        self.setWindowTitle("ChaSe — log in")
        self.setObjectName("login")
        self.server = QLineEdit(str(settings.value(SERVER_KEY, default_server)))
        self.username = QLineEdit(str(settings.value(USERNAME_KEY, "")))
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        for edit, hint in ((self.server, "https://host:8443"), (self.username, "your name"),
                           (self.password, "at least 8 characters")):
            edit.setPlaceholderText(hint)
        self.login_button = QPushButton("Log in")
        self.login_button.setDefault(True)
        self.register_button = QPushButton("Register")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.setTextFormat(Qt.TextFormat.PlainText)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_button = QPushButton("Show details")
        self.details_button.setFlat(True)
        self.details_button.setCheckable(True)
        self.details_button.hide()
        self.details = QLabel()
        self.details.setObjectName("details")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.hide()
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.PlainText)
        self._build()
        self.login_button.clicked.connect(lambda: self._submit(Mode.LOGIN))
        self.register_button.clicked.connect(lambda: self._submit(Mode.REGISTER))
        self.cancel_button.clicked.connect(self._cancel)
        self.details_button.toggled.connect(self._show_details)
        self.password.returnPressed.connect(lambda: self._submit(Mode.LOGIN))
        self.username.returnPressed.connect(self.password.setFocus)
        self.server.returnPressed.connect(self.username.setFocus)
        self.setMinimumWidth(380)
        self.resize(420, 0)
        self.focus_first_empty()

    def _build(self) -> None:
        title = QLabel("ChaSe")
        emphasised(title, 2.2)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        form = QFormLayout()
        form.addRow("Server", self.server)
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)
        buttons = QHBoxLayout()
        buttons.addWidget(self.register_button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.login_button)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.details)
        layout.addWidget(self.info)
        layout.addLayout(buttons)

    def focus_first_empty(self) -> None:
        """Put the cursor where the person types next: the first empty field, else Password."""
        for edit in (self.server, self.username, self.password):
            if not edit.text():
                edit.setFocus()
                return
        self.password.setFocus()

    def _cancel(self) -> None:
        self.cancelled.emit()
        self.show_error("")

    def _show_details(self, on: bool) -> None:
        self.details.setVisible(on)
        self.details_button.setText("Hide details" if on else "Show details")
        self.adjustSize()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.ApplicationPaletteChange:
            tint(self.error, Colours.from_palette(QApplication.palette()).error)

    def keyPressEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt's name
        if event.key() == Qt.Key.Key_Escape and self.cancel_button.isVisible():
            self._cancel()
            return
        super().keyPressEvent(event)

    def _submit(self, mode: Mode) -> None:
        server, username, password = self.server.text().strip(), self.username.text().strip(), self.password.text()
        if not server or not username or not password:
            self.show_error("Enter the server address, a username and a password.")
            return
        self.show_error("")
        self.set_busy(True, "Registering…" if mode is Mode.REGISTER else "Logging in…")
        self.submitted.emit(LoginForm(mode, server, username, password))

    def remember(self, form: LoginForm) -> None:
        """Keep the server and username for next time (after a successful login)."""
        self._settings.setValue(SERVER_KEY, form.server)
        self._settings.setValue(USERNAME_KEY, form.username)
        self._settings.sync()

    def show_error(self, text: str, *, details: str = "") -> None:
        """Show ``text`` (plain words, plain text, never markup, wrapped: never cut off) and let
        the person try again; ``details`` (the technical reason) show on demand."""
        self.error.setText(text)
        self.error.setVisible(bool(text))
        tint(self.error, Colours.from_palette(self.palette()).error)
        self.details.setText(details if details and details != text else "")
        self.details_button.setChecked(False)
        self.details_button.setVisible(bool(self.details.text()))
        self.set_busy(False)
        if text:
            self.focus_first_empty()
        self.adjustSize()

    def set_busy(self, busy: bool, note: str = "") -> None:
        """While a login is under way: fields locked, what is happening shown, Cancel offered."""
        self.info.setText(note if busy else "")
        for widget in (self.login_button, self.register_button, self.server, self.username, self.password):
            widget.setEnabled(not busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.cancel_button.setFocus()

    def reset(self, reason: str = "") -> None:
        """Back to a fresh form (after logout or an expired session), showing ``reason``."""
        self.password.clear()
        self.show_error(reason)
        self.focus_first_empty()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.closing.emit()
        super().closeEvent(event)
