"""Qt models, the chat view's text layout, the input box and the chime, without a server."""

from __future__ import annotations

import wave
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chase.schemas import ChatMessage, UserRef
from client.core.conversations import PUBLIC
from client.qt.chat_view import body_document
from client.qt.main_window import MessageInput
from client.qt.models import ConversationListModel, ConversationRoles, MessageListModel, MessageRoles
from client.qt.qt import QFont, QSettings, Qt
from client.qt.sound import Chime, write_chime

ME = UserRef(id=1, username="alice")
BOB = UserRef(id=2, username="bob")
CAROL = UserRef(id=3, username="carol")


def msg(id: int, sender: UserRef = BOB, body: str = "hi") -> ChatMessage:
    return ChatMessage(id=id, sender=sender, recipient_id=None, body=body,
                       created_at=datetime(2026, 1, 1, 12, 30, tzinfo=UTC), client_msg_id=f"c{id}")


def test_message_model_keeps_each_message_once_in_id_order(qapp: Any, qtbot: Any) -> None:
    model = MessageListModel(ME.id)
    model.set_messages([msg(2), msg(5)])
    rows: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _parent, first, last: rows.append((first, last)))
    assert model.add([msg(3), msg(5), msg(1)]) == 2
    assert model.message_ids() == [1, 2, 3, 5]
    assert rows == [(0, 0), (2, 2)]  # row by row, so the view keeps its place
    model.add([msg(9, ME, "<i>mine</i>")])
    own = model.index(model.rowCount() - 1)
    assert own.data(MessageRoles.OWN) is True and own.data(MessageRoles.SENDER) == "You"
    assert own.data(MessageRoles.BODY) == "<i>mine</i>"


def test_bodies_are_laid_out_as_plain_text_never_html(qapp: Any) -> None:
    document = body_document("<b>bold</b> &amp; <img src=x>", QFont(), 300)
    assert document.toPlainText() == "<b>bold</b> &amp; <img src=x>"
    narrow = body_document("word " * 40, QFont(), 120)
    assert narrow.size().height() > body_document("word", QFont(), 120).size().height()


def test_sidebar_has_all_first_then_users_with_presence_and_unread(qapp: Any) -> None:
    model = ConversationListModel(ME.id)
    model.set_users([CAROL, ME, BOB], online={3})
    titles = [model.index(r).data(ConversationRoles.TITLE) for r in range(model.rowCount())]
    assert titles == ["All", "bob", "carol"]
    assert model.index(2).data(ConversationRoles.ONLINE) is True
    assert model.index(1).data(ConversationRoles.ONLINE) is False
    model.add_unread(BOB.id, 2)
    assert model.index(1).data(Qt.ItemDataRole.DisplayRole) == "bob  (2)"
    model.clear_unread(BOB.id)
    assert model.index(1).data(Qt.ItemDataRole.DisplayRole) == "bob"
    model.add_user(UserRef(id=7, username="dave"), online=True)
    model.add_user(UserRef(id=7, username="dave"), online=True)
    assert model.rowCount() == 4 and model.conversation_at(3) == 7 and model.conversation_at(0) is PUBLIC


def test_enter_submits_shift_enter_adds_a_line_and_the_limit_holds(qapp: Any, qtbot: Any) -> None:
    box = MessageInput()
    qtbot.addWidget(box)
    box.max_chars = 10
    sent: list[str] = []
    refused: list[str] = []
    box.submitted.connect(sent.append)
    box.refused.connect(refused.append)
    qtbot.keyClicks(box, "one")
    qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(box, "two")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert sent == ["one\ntwo"] and box.toPlainText() == ""
    qtbot.keyClicks(box, "x" * 11)
    qtbot.keyClick(box, Qt.Key.Key_Enter)
    assert sent == ["one\ntwo"] and "at most 10 characters" in refused[-1]


def test_chime_counts_requests_and_remembers_mute(qapp: Any, tmp_path: Path) -> None:
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    # With audio enabled on a machine that may have no device: never an error, just silence.
    chime = Chime(settings, enable_audio=True)
    chime.request()
    chime.request()
    assert chime.requests == 2
    chime.set_muted(True)
    settings.sync()
    again = Chime(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), enable_audio=False)
    assert again.muted


def test_the_chime_is_a_short_valid_wav(tmp_path: Path) -> None:
    path = write_chime(tmp_path / "chime.wav")
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 44_100)
        assert 0.2 < wav.getnframes() / wav.getframerate() < 1.0
        frames = wav.readframes(wav.getnframes())
    assert max(frames) > 0  # not silence


def test_main_opens_the_login_window_and_closing_it_quits(qapp: Any, tmp_path: Path) -> None:
    import asyncio

    from client.qt import app as app_module
    from client.qt.login_window import LoginWindow
    from client.qt.qt import QTimer

    seen: list[str] = []

    def close_login() -> None:
        for widget in qapp.topLevelWidgets():
            if isinstance(widget, LoginWindow) and widget.isVisible():
                seen.append(widget.server.text())
                widget.close()

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    QTimer.singleShot(0, close_login)
    try:
        assert app_module.main(["--server", "https://chat.example.org:8443"]) == 0
    finally:
        asyncio.set_event_loop(None)
    assert seen == ["https://chat.example.org:8443"]
