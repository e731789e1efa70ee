"""Fetching what the server stored: the first load, the sync after each reconnect, older pages.

After every connect the caller must :meth:`History.catch_up`: the first time it loads the
public room's latest page plus everything newer (so history is there at login), later only
what was missed while away.

The sync cursor only advances from sync pages (and the first history page), never from live
messages: live delivery can miss a message without the connection noticing (one committed
while the gateway was still binding this user's routing keys, one dropped from a full gateway
queue), and a cursor taken from a later live message would skip it for good. Starting the
next sync from the last *synced* id re-fetches a little, and the store drops the duplicates.
"""

from __future__ import annotations

from collections.abc import Callable

from chase.schemas import ChatMessage, HistoryFrame, HistoryPageFrame, SyncFrame, SyncPageFrame
from client.core.conversations import PUBLIC, ConversationId, ConversationStore
from client.core.events import EventHub, HistoryLoaded, Source
from client.core.requests import PendingRequests, new_request_id
from client.core.transport import Link

#: Puts messages into the store and tells the UI; returns the ones that were new.
AddMessages = Callable[[list[ChatMessage], Source], list[ChatMessage]]


class History:
    def __init__(self, store: ConversationStore, hub: EventHub, *, add: AddMessages, requests: PendingRequests,
                 link: Callable[[], Link | None], timeout: float, page_size: int) -> None:
        self._store = store
        self._hub = hub
        self._add = add
        self._requests = requests
        self._link = link
        self._timeout = timeout
        self._page_size = page_size
        self._cursor = 0
        self._bootstrapped = False

    async def catch_up(self) -> None:
        """Fetch what this client has not seen; raises ClientError when the link fails meanwhile."""
        if self._bootstrapped:
            await self._sync(Source.SYNC)
            return
        page = await self._page(PUBLIC, None)
        self._add(page.messages, Source.HISTORY)
        self._store.mark_history(PUBLIC, has_more=page.has_more)
        self._hub.emit(HistoryLoaded(PUBLIC, page.has_more))
        self._advance(page.messages)
        self._bootstrapped = True
        await self._sync(Source.HISTORY)

    async def load(self, conversation: ConversationId, *, older: bool) -> list[ChatMessage]:
        """Fetch a page of ``conversation``; see :meth:`ChatClient.load_history`."""
        before_id = self._store.oldest_id(conversation) if older else None
        page = await self._page(conversation, before_id)
        added = self._add(page.messages, Source.HISTORY)
        oldest = min((m.id for m in page.messages), default=None)
        # A newest page's has_more speaks of what lies before that page, not before older known ones.
        if before_id is not None or oldest is None or oldest == self._store.oldest_id(conversation):
            self._store.mark_history(conversation, has_more=page.has_more)
        self._hub.emit(HistoryLoaded(conversation, self._store.has_more_before(conversation)))
        return added

    async def _sync(self, source: Source) -> None:
        while True:
            frame = SyncFrame(request_id=new_request_id(), after_id=self._cursor)
            page = await self._requests.ask(self._link(), frame, SyncPageFrame, self._timeout)
            self._add(page.messages, source)
            self._advance(page.messages)
            if not page.has_more or not page.messages:
                return

    async def _page(self, conversation: ConversationId, before_id: int | None) -> HistoryPageFrame:
        frame = HistoryFrame(request_id=new_request_id(), with_user_id=conversation, before_id=before_id,
                             limit=self._page_size)
        return await self._requests.ask(self._link(), frame, HistoryPageFrame, self._timeout)

    def _advance(self, messages: list[ChatMessage]) -> None:
        self._cursor = max([self._cursor, *(m.id for m in messages)])
