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
    QCloseEvent,
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
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.setTextFormat(Qt.TextFormat.PlainText)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.PlainText)
        self._build()
        self.login_button.clicked.connect(lambda: self._submit(Mode.LOGIN))
        self.register_button.clicked.connect(lambda: self._submit(Mode.REGISTER))
        self.password.returnPressed.connect(lambda: self._submit(Mode.LOGIN))
        self.resize(380, 0)

    def _build(self) -> None:
        title = QLabel("ChaSe")
        title.setStyleSheet("font-size: 22pt; font-weight: bold;")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        form = QFormLayout()
        form.addRow("Server", self.server)
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)
        buttons = QHBoxLayout()
        buttons.addWidget(self.register_button)
        buttons.addStretch(1)
        buttons.addWidget(self.login_button)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.info)
        layout.addLayout(buttons)

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

    def show_error(self, text: str) -> None:
        """Show ``text`` (plain text, never markup) and let the user try again."""
        self.error.setText(text)
        self.set_busy(False)

    def set_busy(self, busy: bool, note: str = "") -> None:
        self.info.setText(note if busy else "")
        for widget in (self.login_button, self.register_button, self.server, self.username, self.password):
            widget.setEnabled(not busy)

    def reset(self, reason: str = "") -> None:
        """Back to a fresh form (after logout or an expired session), showing ``reason``."""
        self.password.clear()
        self.show_error(reason)
        self.password.setFocus()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.closing.emit()
        super().closeEvent(event)
