"""The history/sync responder, on an in-memory reader (no database, no bus)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import OperationalError

from chase.schemas import (
    ChatMessage,
    HistoryQuery,
    MessagePage,
    QueryFailed,
    SessionRevoked,
    SyncQuery,
    UserRef,
)
from services.persistence.errors import QueryErrorCode
from services.persistence.queries import HistoryResponder

MESSAGE = ChatMessage(
    id=7, sender=UserRef(id=1, username="alice"), recipient_id=None, body="hi",
    created_at=datetime(2026, 1, 1, tzinfo=UTC), client_msg_id="c1",
)


class FakeReader:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple] = []

    async def history(self, viewer_id, with_user_id, before_id, limit):  # noqa: ANN001
        self.calls.append(("history", viewer_id, with_user_id, before_id, limit))
        if self.error:
            raise self.error
        return MessagePage(messages=[MESSAGE], has_more=True)

    async def sync(self, viewer_id, after_id, limit):  # noqa: ANN001
        self.calls.append(("sync", viewer_id, after_id, limit))
        if self.error:
            raise self.error
        return MessagePage(messages=[], has_more=False)


async def test_history_query_is_answered_with_the_page():
    reader = FakeReader()
    reply = await HistoryResponder(reader)(HistoryQuery(viewer_id=3, with_user_id=4, before_id=9, limit=20))
    assert reply == MessagePage(messages=[MESSAGE], has_more=True)
    assert reader.calls == [("history", 3, 4, 9, 20)]


async def test_sync_query_is_answered_with_the_page():
    reader = FakeReader()
    reply = await HistoryResponder(reader)(SyncQuery(viewer_id=3, after_id=5, limit=10))
    assert reply == MessagePage(messages=[], has_more=False)
    assert reader.calls == [("sync", 3, 5, 10)]


async def test_other_events_get_bad_query():
    reader = FakeReader()
    reply = await HistoryResponder(reader)(SessionRevoked(user_id=1, session_id="s"))
    assert isinstance(reply, QueryFailed) and reply.code == QueryErrorCode.BAD_QUERY
    assert reader.calls == []


async def test_database_failure_is_store_unavailable_without_details():
    error = OperationalError("SELECT secret_internal_detail", {}, Exception("password=hunter2"))
    reply = await HistoryResponder(FakeReader(error))(SyncQuery(viewer_id=3, after_id=0, limit=10))
    assert isinstance(reply, QueryFailed) and reply.code == QueryErrorCode.STORE_UNAVAILABLE
    assert "secret" not in reply.reason and "hunter2" not in reply.reason


async def test_unexpected_failure_is_internal_without_details():
    reply = await HistoryResponder(FakeReader(RuntimeError("stack details")))(
        HistoryQuery(viewer_id=3, with_user_id=None, before_id=None, limit=5)
    )
    assert reply == QueryFailed(code=QueryErrorCode.INTERNAL, reason="internal error")
