"""Message text: plain text only, http(s) links clickable and nothing else, copy and a context menu."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chase.schemas import ChatMessage, UserRef
from client.qt.chat_view import ChatView
from client.qt.linkify import find_links, is_openable
from client.qt.models import MessageListModel, MessageRoles
from client.qt.qt import QApplication, QPoint, Qt

ME, BOB = UserRef(id=1, username="alice"), UserRef(id=2, username="bob")


def msg(id: int, body: str) -> ChatMessage:
    return ChatMessage(id=id, sender=BOB, recipient_id=None, body=body,
                       created_at=datetime(2026, 1, 1, 12, 30, tzinfo=UTC), client_msg_id=f"c{id}")


def test_only_http_and_https_links_are_found() -> None:
    text = ("see https://example.org/a?b=1, (and http://x.test/wiki/Foo_(bar)). "
            "javascript:alert(1) file:///etc/passwd ftp://x.test mailto:a@b.c www.example.org https://")
    assert [link.url for link in find_links(text)] == ["https://example.org/a?b=1", "http://x.test/wiki/Foo_(bar)"]
    first = find_links(text)[0]
    assert text[first.start:first.end] == first.url
    assert is_openable("HTTPS://example.org") and not is_openable("javascript:alert(1)")
    assert not is_openable("file:///etc/passwd") and not is_openable("https://a b")


def _view(qtbot: Any, bodies: list[str]) -> tuple[ChatView, list[str]]:
    opened: list[str] = []
    model = MessageListModel(ME.id)
    model.set_messages([msg(i + 1, body) for i, body in enumerate(bodies)])
    view = ChatView(open_url=opened.append)
    view.setModel(model)
    qtbot.addWidget(view)
    view.resize(520, 400)
    view.show()
    qtbot.waitExposed(view)
    return view, opened


def _points(view: ChatView, row: int) -> list[QPoint]:
    rect = view.visualRect(view.model().index(row, 0))
    return [QPoint(x, y) for y in range(rect.top(), rect.bottom(), 4) for x in range(rect.left(), rect.right(), 4)]


def test_clicking_a_link_opens_it_and_nothing_else_opens(qapp: Any, qtbot: Any) -> None:
    view, opened = _view(qtbot, ["<a href=\"javascript:alert(1)\">click</a> file:///etc/passwd plain",
                                 "docs at https://example.org/guide today"])
    # Markup in a message is text, not a link; neither is a javascript: address.
    assert all(view.link_at(p) is None for p in _points(view, 0))
    on_link = [p for p in _points(view, 1) if view.link_at(p) == "https://example.org/guide"]
    assert on_link, "the link is found under the mouse"
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=on_link[len(on_link) // 2])
    assert opened == ["https://example.org/guide"]
    off_link = next(p for p in _points(view, 1) if view.link_at(p) is None and view.indexAt(p).row() == 1)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=off_link)
    assert opened == ["https://example.org/guide"]


def test_selected_messages_copy_as_their_text_and_the_context_menu_copies_text_or_link(qapp: Any, qtbot: Any) -> None:
    view, opened = _view(qtbot, ["first <b>as typed</b>", "second with https://example.org/x."])
    QApplication.clipboard().clear()
    view.selectAll()
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == "first <b>as typed</b>\n\nsecond with https://example.org/x."
    view.clearSelection()
    point = view.visualRect(view.model().index(1, 0)).center()
    menu = view.context_menu(point)
    labels = {action.text(): action for action in menu.actions()}
    assert {"Copy text", "Copy link", "Open link"} <= set(labels)
    labels["Copy link"].trigger()
    assert QApplication.clipboard().text() == "https://example.org/x"
    labels["Copy text"].trigger()
    assert QApplication.clipboard().text() == "second with https://example.org/x."
    labels["Open link"].trigger()
    assert opened == ["https://example.org/x"]
    # A message without links offers no link actions; the full time is shown in the menu.
    first = {a.text() for a in view.context_menu(view.visualRect(view.model().index(0, 0)).center()).actions()}
    assert "Copy link" not in first and any("2026" in text for text in first)


def test_double_click_opens_the_text_to_select_and_copy_part_of_it(qapp: Any, qtbot: Any) -> None:
    from client.qt.qt import QTextCursor, QTextEdit

    view, opened = _view(qtbot, ["copy only <this> part", "another"])
    rect = view.visualRect(view.model().index(0, 0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    editor = view.findChild(QTextEdit, "message_text")
    assert editor is not None and editor.isVisible() and editor.isReadOnly()
    assert editor.toPlainText() == "copy only <this> part"  # plain text, as drawn
    cursor = editor.textCursor()
    cursor.setPosition(10)
    cursor.setPosition(16, QTextCursor.MoveMode.KeepAnchor)
    editor.setTextCursor(cursor)
    qtbot.keyClick(editor, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == "<this>"
    qtbot.keyClick(editor, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: view.findChild(QTextEdit, "message_text") is None or not editor.isVisible())
    assert view.model().index(0, 0).data(MessageRoles.BODY) == "copy only <this> part"
    assert opened == []
