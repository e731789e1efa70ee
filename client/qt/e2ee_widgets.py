"""End-to-end encryption in the desktop client: what is shown (docs/e2ee.md).

- :class:`EncryptionBar`: under the conversation title, whether the conversation is end-to-end
  encrypted, verified, or (the public room) readable by the server; with buttons to compare the
  safety number and to set up the recovery key.
- :class:`SafetyNumberDialog`: the number to compare; "They match" marks the conversation verified.
- :class:`RecoveryKeyDialog`: the recovery key, shown once; it closes only when the person says
  they wrote it down.

Widgets only: :mod:`client.qt.e2ee_controller` wires them to the client core.
"""

from __future__ import annotations

from client.qt.qt import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFont,
    QHBoxLayout,
    QLabel,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)

PUBLIC_TEXT = "Public room: not end-to-end encrypted. The server can read these messages."
ROOM_TEXT = "Group room: not end-to-end encrypted. The server can read these messages."
ENCRYPTED_TEXT = "🔒 End-to-end encrypted. Not verified: compare the safety number with {name} to be sure."
VERIFIED_TEXT = "✔ Verified: end-to-end encrypted, and you compared the safety number with {name}."
CHANGED_TEXT = ("⚠ {name}'s devices or keys changed since you verified them. "
                "Compare the safety number again before you send.")


class EncryptionBar(QWidget):
    verify_requested = pyqtSignal()
    recovery_requested = pyqtSignal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("encryptionBar")
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.state.setObjectName("encryptionState")
        self.verify_button = QPushButton("Compare safety number…")
        self.recovery_button = QPushButton("Set up recovery key…")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.state, 1)
        layout.addWidget(self.verify_button)
        layout.addWidget(self.recovery_button)
        self.verify_button.clicked.connect(self.verify_requested)
        self.recovery_button.clicked.connect(self.recovery_requested)

    def show_public(self) -> None:
        self.state.setText(PUBLIC_TEXT)
        self.verify_button.hide()

    def show_room(self) -> None:
        self.state.setText(ROOM_TEXT)
        self.verify_button.hide()

    def show_private(self, name: str, *, verified: bool, changed: bool = False) -> None:
        template = CHANGED_TEXT if changed else VERIFIED_TEXT if verified else ENCRYPTED_TEXT
        self.state.setText(template.format(name=name))
        self.verify_button.show()


class SafetyNumberDialog(QDialog):
    """Shows the safety number; accepted (``exec`` returns 1) when the person says it matches."""

    def __init__(self, parent: QWidget | None, name: str, number: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Safety number with {name}")
        intro = QLabel(f"Compare this number with the one {name} sees on their device, in person or on a "
                       "call. If they are the same, nobody is reading your conversation in between.")
        intro.setWordWrap(True)
        groups = number.split()
        self.number = QLabel("\n".join(" ".join(groups[i:i + 4]) for i in range(0, len(groups), 4)))
        self.number.setObjectName("safetyNumber")
        font = QFont("monospace")
        font.setPointSize(font.pointSize() + 4)
        self.number.setFont(font)
        self.number.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.number.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox()
        self.match_button = buttons.addButton("They match: mark as verified", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = buttons.addButton("They differ / not now", QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.number)
        layout.addWidget(buttons)


class RecoveryKeyDialog(QDialog):
    """The recovery key, shown once. Close is enabled only after "I have written it down"."""

    def __init__(self, parent: QWidget | None, recovery_key: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Your recovery key")
        intro = QLabel("Write this key down and keep it safe. With it, a new device can read your earlier "
                       "encrypted messages. It is shown only now, and the server never sees it.")
        intro.setWordWrap(True)
        self.key = QLabel(recovery_key)
        self.key.setObjectName("recoveryKey")
        self.key.setFont(QFont("monospace"))
        self.key.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.key.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.confirm = QCheckBox("I have written down my recovery key")
        buttons = QDialogButtonBox()
        self.done_button = buttons.addButton("Done", QDialogButtonBox.ButtonRole.AcceptRole)
        self.done_button.setEnabled(False)
        self.confirm.toggled.connect(self.done_button.setEnabled)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.key)
        layout.addWidget(self.confirm)
        layout.addWidget(buttons)

    def reject(self) -> None:
        # Escape does not close it before the person confirmed.
        if self.confirm.isChecked():
            super().reject()
