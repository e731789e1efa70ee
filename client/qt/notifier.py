"""Desktop notifications, the unread badge and the chime, with bursts folded into one.

What counts as news is decided by the controller (:func:`client.core.notify.should_notify`
plus the account's mute and do-not-disturb choices); this module only tells the person:
a notification through the system tray (QSystemTrayIcon: the platform's notification service
where there is one) naming the sender and, if the account allows previews, the text; the
chime; and the unread total on the tray icon. A burst (messages less than ``quiet`` seconds
apart: a busy room, 300 messages caught up after a reconnect) gives one chime and one
notification, not one per message.

Every notification asked for is kept in :attr:`Notifier.shown` and logged (what tests and
people debugging a silent desktop look at), whether or not the platform can display it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chase.logging import get_logger
from client.core.conversations import ConversationId
from client.qt.qt import (
    QColor,
    QFont,
    QFrame,
    QGuiApplication,
    QHBoxLayout,
    QIcon,
    QLabel,
    QObject,
    QPainter,
    QPixmap,
    QPoint,
    QPolygon,
    QRect,
    QSystemTrayIcon,
    Qt,
    QTimer,
    QVBoxLayout,
    pyqtSignal,
)
from client.qt.sound import Chime

log = get_logger(__name__)

#: Messages closer together than this (seconds) are one burst: one chime, one notification.
BURST_QUIET = 3.0
PREVIEW_CHARS = 140


@dataclass(frozen=True)
class Shown:
    title: str
    text: str
    conversation: ConversationId


def app_icon(unread: int = 0) -> QIcon:
    """The ChaSe icon (a speech bubble), with the unread count on a red badge when there is one."""
    pixmap = QPixmap(64, 64)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#2f6fdb"))
    painter.drawRoundedRect(4, 8, 52, 40, 12, 12)
    painter.drawPolygon(QPolygon([QPoint(14, 46), QPoint(14, 60), QPoint(28, 46)]))
    painter.setPen(QColor("#ffffff"))
    font = QFont()
    font.setBold(True)
    font.setPixelSize(26)
    painter.setFont(font)
    painter.drawText(QRect(4, 8, 52, 40), Qt.AlignmentFlag.AlignCenter.value, "C")
    if unread:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#d93025"))
        painter.drawEllipse(34, 30, 30, 30)
        painter.setPen(QColor("#ffffff"))
        font.setPixelSize(16 if unread < 100 else 12)
        painter.setFont(font)
        painter.drawText(QRect(34, 30, 30, 30), Qt.AlignmentFlag.AlignCenter.value,
                         str(unread) if unread < 1000 else "999+")
    painter.end()
    return QIcon(pixmap)


class Toast(QFrame):
    """A notification drawn by the app itself, top right of the screen, for desktops with no
    system tray to show one (bare X servers, some GNOME setups). A click opens the conversation."""

    clicked = pyqtSignal()

    def __init__(self) -> None:
        super().__init__(None, Qt.WindowType.ToolTip | Qt.WindowType.FramelessWindowHint
                         | Qt.WindowType.WindowStaysOnTopHint)
        self.setObjectName("toast")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.icon = QLabel()
        self.icon.setPixmap(app_icon().pixmap(40, 40))
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.text = QLabel()
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setWordWrap(True)
        words = QVBoxLayout()
        words.addWidget(self.title)
        words.addWidget(self.text)
        layout = QHBoxLayout(self)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(words, 1)
        self.setFixedWidth(340)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)

    def show_message(self, title: str, text: str, seconds: float = 8.0) -> None:
        self.title.setText(title)
        self.text.setText(text)
        self.adjustSize()
        screen = QGuiApplication.primaryScreen()
        if screen is not None:
            free = screen.availableGeometry()
            self.move(free.right() - self.width() - 16, free.top() + 16)
        self.show()
        self.raise_()
        self._timer.start(int(seconds * 1000))

    def mousePressEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt's name
        self.hide()
        self.clicked.emit()


def preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[:PREVIEW_CHARS - 1] + "…"


class Notifier(QObject):
    """Emits :attr:`clicked` with the conversation of a notification the person clicked."""

    clicked = pyqtSignal(object)        # ConversationId
    tray_activated = pyqtSignal()

    def __init__(self, chime: Chime, *, clock: Callable[[], float] = time.monotonic,
                 quiet: float = BURST_QUIET, use_tray: bool = True) -> None:
        super().__init__()
        self.chime, self._clock = chime, clock
        #: Seconds of quiet that end a burst (0: every message is news on its own).
        self.quiet = quiet
        self.shown: list[Shown] = []
        self._burst_until = float("-inf")
        self._last: ConversationId = None
        self.unread = 0
        self.tray: QSystemTrayIcon | None = None
        #: Shown instead of the tray's message where there is no system tray.
        self.toast: Toast | None = None
        if use_tray:
            self.tray = QSystemTrayIcon(app_icon(), self)
            self.tray.setToolTip("ChaSe")
            self.tray.messageClicked.connect(lambda: self.clicked.emit(self._last))
            self.tray.activated.connect(lambda _reason: self.tray_activated.emit())
            if QSystemTrayIcon.isSystemTrayAvailable():
                self.tray.show()
            else:
                log.info("client.no_system_tray")
                self.toast = Toast()
                self.toast.clicked.connect(lambda: self.clicked.emit(self._last))

    def news(self, conversation: ConversationId, where: str, sender: str, text: str, *,
             previews: bool, sound: bool = True) -> bool:
        """A message from ``sender`` in ``where`` deserves attention; returns True when the person
        was told now (False: folded into the burst already announced)."""
        now = self._clock()
        folded = now < self._burst_until
        self._burst_until = now + self.quiet
        if folded:
            return False
        title = f"{sender} in {where}" if where != sender else sender
        body = preview(text) if previews else "New message"
        self._last = conversation
        self.shown.append(Shown(title, body, conversation))
        log.info("client.notification", conversation=str(conversation), previews=previews)
        if self.toast is not None:
            self.toast.show_message(title, body)
        elif self.tray is not None:
            self.tray.showMessage(title, body, app_icon(), 8000)
        if sound:
            self.chime.request()
        return True

    def set_unread(self, total: int) -> None:
        """Show the unread total on the tray icon and in its tooltip."""
        if total == self.unread:
            return
        self.unread = total
        if self.tray is not None:
            self.tray.setIcon(app_icon(total))
            self.tray.setToolTip(f"ChaSe — {total} unread" if total else "ChaSe")

    def close(self) -> None:
        if self.tray is not None:
            self.tray.hide()
        if self.toast is not None:
            self.toast.close()
