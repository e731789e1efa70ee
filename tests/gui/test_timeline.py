"""The timeline: opens at the newest message or the first unread, keeps to the bottom whatever
changes the layout, jump to latest with a count, date separators, the full time on hover."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chase.schemas import ChatMessage, UserRef
from client.core.conversations import PUBLIC
from client.qt.chat_view import ChatView
from client.qt.models import MessageListModel, MessageRoles, day_label
from client.qt.qt import QLabel, Qt, QVBoxLayout, QWidget
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app, other_user
from tests.helpers import wait_until
from tests.integration.system import System

ME, BOB = UserRef(id=1, username="alice"), UserRef(id=2, username="bob")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def msg(id: int, when: datetime = START, body: str = "") -> ChatMessage:
    return ChatMessage(id=id, sender=BOB, recipient_id=None, body=body or f"message {id} " + "word " * (id % 7),
                       created_at=when, client_msg_id=f"c{id}")


def at_bottom(view: ChatView) -> bool:
    bar = view.verticalScrollBar()
    return bar.maximum() > 0 and bar.value() == bar.maximum()


def test_day_labels() -> None:
    today = date(2026, 12, 1)  # a Tuesday
    assert day_label(today, today) == "Today"
    assert day_label(date(2026, 11, 30), today) == "Yesterday"
    assert day_label(date(2026, 11, 27), today) == "Friday"
    assert day_label(date(2026, 11, 3), today) == "Tuesday 3 November"
    assert day_label(date(2025, 12, 24), today) == "Wednesday 24 December 2025"


def test_a_date_separator_above_the_first_message_of_each_day_and_the_full_time_on_hover(qapp: Any) -> None:
    model = MessageListModel(ME.id, today=lambda: date(2026, 3, 3))
    model.set_messages([msg(2), msg(3, START + timedelta(minutes=5)), msg(4, START + timedelta(days=1))])
    breaks = [model.index(r).data(MessageRoles.DAY_BREAK) for r in range(3)]
    assert breaks == ["Yesterday", "", "Today"]
    assert model.index(0).data(Qt.ItemDataRole.ToolTipRole) == START.astimezone().strftime("%A %d %B %Y, %H:%M:%S")
    # A message from the first day arriving late lands above, and today's row keeps its line.
    model.add([msg(1, START - timedelta(days=3))])
    assert [model.index(r).data(MessageRoles.DAY_BREAK) for r in range(4)][:2] == ["Friday", "Yesterday"]


def _timeline(qtbot: Any, count: int) -> tuple[QWidget, ChatView, MessageListModel, QLabel]:
    model = MessageListModel(ME.id)
    model.set_messages([msg(i, START + timedelta(minutes=i)) for i in range(1, count + 1)])
    page = QWidget()
    layout = QVBoxLayout(page)
    view = ChatView()
    view.setModel(model)
    notice = QLabel("A notice that appears below the timeline\nand takes two lines")
    notice.hide()
    layout.addWidget(view, 1)
    layout.addWidget(notice)
    qtbot.addWidget(page)
    page.resize(520, 420)
    page.show()
    qtbot.waitExposed(page)
    view.open_at(None)
    return page, view, model, notice


def test_stays_at_the_bottom_whatever_happens_to_the_layout(qapp: Any, qtbot: Any) -> None:
    page, view, model, notice = _timeline(qtbot, 60)
    qtbot.waitUntil(lambda: at_bottom(view))
    page.resize(520, 300)          # the window shrinks
    qtbot.waitUntil(lambda: at_bottom(view))
    notice.show()                  # a notice takes room below
    qtbot.waitUntil(lambda: at_bottom(view))
    page.resize(380, 500)          # narrower: every bubble re-wraps, taller
    qtbot.waitUntil(lambda: at_bottom(view))
    model.add([msg(100, START + timedelta(hours=5), "a long new message " * 20)])
    qtbot.waitUntil(lambda: at_bottom(view))
    assert not view.jump_button.isVisible()


def test_scrolled_up_new_messages_wait_behind_a_jump_button_with_a_count(qapp: Any, qtbot: Any) -> None:
    page, view, model, _notice = _timeline(qtbot, 60)
    qtbot.waitUntil(lambda: at_bottom(view))
    bar = view.verticalScrollBar()
    bar.setValue(bar.maximum() // 2)
    middle = bar.value()
    qtbot.waitUntil(lambda: view.jump_button.isVisible())
    assert view.jump_button.text() == "↓  Latest"
    model.add([msg(101, START + timedelta(hours=6)), msg(102, START + timedelta(hours=6))])
    model.add([msg(103, START + timedelta(hours=6))])
    assert bar.value() == middle  # the reader is not moved
    assert view.unseen == 3 and view.jump_button.text() == "↓  3 new"
    qtbot.mouseClick(view.jump_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: at_bottom(view))
    assert view.unseen == 0 and not view.jump_button.isVisible()


def test_opens_at_the_first_unread_message_under_a_new_messages_line(qapp: Any, qtbot: Any) -> None:
    page, view, model, _notice = _timeline(qtbot, 60)
    first = model.first_unread(12)
    assert first == 49
    row = model.mark_unread_from(first)
    view.open_at(row)
    qtbot.waitUntil(lambda: view.indexAt(view.viewport().rect().topLeft()).row() == row)
    assert model.index(row).data(MessageRoles.UNREAD_BREAK) is True
    assert model.index(row - 1).data(MessageRoles.UNREAD_BREAK) is False
    assert view.jump_button.isVisible()  # there is more below
    # Layout changes do not move it either, until the person scrolls.
    page.resize(500, 380)
    qtbot.waitUntil(lambda: view.indexAt(view.viewport().rect().topLeft()).row() == row)


def test_a_conversation_with_unread_messages_opens_at_the_first_of_them(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        bob = await other_user(system, "bob")
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        chat = app.chat
        alice_id = chat.session.user.id
        chat.window.select_conversation(bob.me.id)
        for n in range(30):
            await (await bob.send(f"read {n}", to=alice_id)).acked
        await wait_until(lambda: len(chat.messages.bodies()) == 30)
        chat.window.select_conversation(PUBLIC)
        for n in range(25):
            await (await bob.send(f"unread {n}", to=alice_id)).acked
        await wait_until(lambda: chat.conversations.unread(bob.me.id) == 25)
        chat.window.select_conversation(bob.me.id)
        view, model = chat.window.chat, chat.messages
        row = model.bodies().index("unread 0")
        assert model.index(row).data(MessageRoles.UNREAD_BREAK) is True
        await wait_until(lambda: view.indexAt(view.viewport().rect().topLeft()).row() == row)
        assert chat.conversations.unread(bob.me.id) == 0
        # Back and forth without news: it opens at the newest message.
        chat.window.select_conversation(PUBLIC)
        chat.window.select_conversation(bob.me.id)
        await wait_until(lambda: at_bottom(view))
        assert not any(model.index(r).data(MessageRoles.UNREAD_BREAK) for r in range(model.rowCount()))
        await close_all(app, bob)

    run(qloop, scenario())
