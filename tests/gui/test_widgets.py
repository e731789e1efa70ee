"""Qt models, the chat view's text layout, the input box and the chime, without a server."""

from __future__ import annotations

import wave
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chase.schemas import ChatMessage, UserRef
from client.core.conversations import PUBLIC
from client.core.outbox import PendingMessage, PendingState
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


def pending(cmid: str, body: str, state: PendingState = PendingState.SENDING, reason: str = "") -> PendingMessage:
    return PendingMessage(cmid, PUBLIC, body, datetime(2026, 1, 1, 12, 31, tzinfo=UTC), state, reason)


def test_pending_messages_show_after_the_stored_ones_and_turn_into_them_in_place(qapp: Any) -> None:
    model = MessageListModel(ME.id)
    model.set_messages([msg(2), msg(5)], [pending("p1", "first <b>mine</b>")])
    changes: list[tuple[str, int]] = []
    model.rowsInserted.connect(lambda _parent, first, _last: changes.append(("inserted", first)))
    model.rowsRemoved.connect(lambda _parent, first, _last: changes.append(("removed", first)))
    model.dataChanged.connect(lambda top, _bottom: changes.append(("changed", top.row())))
    model.show_pending(pending("p2", "second", PendingState.WAITING))
    row = model.index(3)
    assert (row.data(MessageRoles.BODY), row.data(MessageRoles.SENDER), row.data(MessageRoles.OWN)) == (
        "second", "You", True)
    assert row.data(MessageRoles.PENDING) is PendingState.WAITING and row.data(MessageRoles.MESSAGE_ID) is None
    assert row.data(MessageRoles.TIME) == "not sent yet — will retry when connected"
    assert model.index(2).data(MessageRoles.TIME) == "sending…"
    assert model.index(2).data(MessageRoles.BODY) == "first <b>mine</b>"  # plain text, as typed
    # A state change updates the row where it is.
    model.show_pending(pending("p2", "second", PendingState.RETRYING, "try again shortly"))
    assert model.index(3).data(MessageRoles.TIME) == "not sent yet — will retry: try again shortly"
    # Stored (newest id, first pending): the same row becomes the stored message.
    model.settle("p1", msg(7, ME, "first <b>mine</b>"))
    assert model.message_ids() == [2, 5, 7] and [p.client_msg_id for p in model.pending()] == ["p2"]
    assert model.index(2).data(MessageRoles.PENDING) is None and model.index(2).data(MessageRoles.TIME) == "12:30"
    assert model.rowCount() == 4 and changes == [("inserted", 3), ("changed", 3), ("changed", 2)]
    # A newer message (id 10) came first, so the stored form of p2 (id 9) goes above it, in id
    # order, once, whatever copy arrives later.
    model.add([msg(10)])
    changes.clear()
    model.settle("p2", msg(9, ME, "second"))
    model.add([msg(9, ME, "second")])
    assert model.message_ids() == [2, 5, 7, 9, 10] and model.pending() == []
    assert model.bodies()[-2:] == ["second", "hi"] and model.rowCount() == 5
    assert changes == [("removed", 4), ("inserted", 3), ("changed", 4)]  # the row below: its date line may go


def test_a_failed_message_says_why_and_a_stored_one_arriving_early_is_shown_once(qapp: Any) -> None:
    model = MessageListModel(ME.id)
    model.set_messages([msg(2)])
    model.show_pending(pending("p1", "to nobody", PendingState.FAILED, "the recipient does not exist"))
    model.show_pending(pending("p2", "hello"))
    failed = model.index(1)
    assert failed.data(MessageRoles.TIME) == "not sent: the recipient does not exist"
    assert "refused it: the recipient does not exist" in failed.data(Qt.ItemDataRole.ToolTipRole)
    assert failed.data(Qt.ItemDataRole.DisplayRole) == "You  not sent: the recipient does not exist\nto nobody"
    # p2's stored message was already shown (a sync came first): its pending row just goes.
    model.add([msg(3, ME, "hello")])
    model.settle("p2", msg(3, ME, "hello"))
    assert model.message_ids() == [2, 3] and [p.client_msg_id for p in model.pending()] == ["p1"]
    assert model.rowCount() == 3


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


def test_chime_counts_requests(qapp: Any, tmp_path: Path) -> None:
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    # With audio enabled on a machine that may have no device: never an error, just silence.
    chime = Chime(settings, enable_audio=True)
    chime.request()
    chime.request()
    assert chime.requests == 2


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


def test_the_status_line_speaks_plain_words() -> None:
    from client.core.events import ClientState, StateChanged
    from client.qt.chat_controller import status_text

    down = "cannot reach the gateway at wss://127.0.0.1:8765: ConnectionRefusedError"
    assert status_text(StateChanged(ClientState.CONNECTING)) == "Connecting to the server…"
    assert status_text(StateChanged(ClientState.RECONNECTING, attempt=2, max_attempts=8, reason=down)) == \
        "Reconnecting (attempt 2 of 8): the server cannot be reached."
    offline = status_text(StateChanged(ClientState.OFFLINE, reason=down,
                                       next_attempt_at=datetime(2026, 1, 1, 16, 40, 2)))
    assert offline == "Offline: the server cannot be reached. Trying again at 16:40:02, or press Retry."
    assert "Error" not in offline and "wss://" not in offline
