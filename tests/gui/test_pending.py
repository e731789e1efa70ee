"""One's own messages show at once as pending, and become the stored message once acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

from client.core.conversations import PUBLIC
from client.core.outbox import PendingState
from client.qt.models import MessageListModel, MessageRoles
from client.qt.qt import Qt
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app
from tests.gui.server_thread import ServerThread
from tests.helpers import wait_until
from tests.integration.system import System


def rows(model: MessageListModel) -> list[tuple[str, PendingState | None]]:
    """(body, pending state or None when stored) of every row shown, top to bottom."""
    return [(model.index(r).data(MessageRoles.BODY), model.index(r).data(MessageRoles.PENDING))
            for r in range(model.rowCount())]


def type_and_send(qtbot: Any, window: Any, text: str) -> None:
    qtbot.keyClicks(window.input, text)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)


def test_a_message_typed_while_the_gateway_is_down_shows_pending_then_once_as_stored(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, server: ServerThread, system: System, settings: Any) -> None:
    async def scenario() -> None:
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        chat, window, model = app.chat, app.chat.window, app.chat.messages
        # Whenever the model changes, no message may be on two rows.
        doubled: list[list[str]] = []

        def check(*_: object) -> None:
            bodies = [body for body, _ in rows(model)]
            if len(bodies) != len(set(bodies)):
                doubled.append(bodies)

        for signal in (model.rowsInserted, model.rowsRemoved, model.dataChanged, model.modelReset):
            signal.connect(check)
        # What each new row was when it appeared: own messages appear pending, never stored.
        appeared: list[tuple[str, PendingState | None]] = []
        model.rowsInserted.connect(lambda _parent, first, _last: appeared.append(rows(model)[first]))

        type_and_send(qtbot, window, "before")
        await wait_until(lambda: rows(model) == [("before", None)])

        await server.run(System.stop_gateway)
        await wait_until(lambda: window.status.text().startswith("Reconnecting"))
        type_and_send(qtbot, window, "typed while down")
        await wait_until(lambda: rows(model) == [("before", None), ("typed while down", PendingState.WAITING)])
        pending_row = model.index(1)
        assert pending_row.data(MessageRoles.TIME) == "not sent yet — will retry when connected"
        assert pending_row.data(MessageRoles.OWN) is True and pending_row.data(MessageRoles.MESSAGE_ID) is None
        assert not window.notice.isVisible()  # the bubble says it; no separate notice

        await server.run(System.start_gateway)
        await wait_until(lambda: rows(model) == [("before", None), ("typed while down", None)], timeout=30)
        ids = model.message_ids()
        assert len(ids) == 2 and ids == sorted(ids)
        stored = chat.client.store.messages(PUBLIC)[-1]
        assert model.index(1).data(MessageRoles.MESSAGE_ID) == stored.id == ids[1]
        assert model.index(1).data(MessageRoles.TIME) == MessageListModel.time_label(stored)
        assert model.pending() == [] and chat.client.outbox.pending() == []
        await wait_until(lambda: window.status.text() == "Connected")

        assert appeared == [("before", PendingState.SENDING), ("typed while down", PendingState.WAITING)]
        assert doubled == []
        await close_all(app)

    run(qloop, scenario(), timeout=90)
