"""Fetching what the server stored: the first load, catching up, older pages.

For every link the caller runs :meth:`History.keep_up`: it catches up at once (the first time
after login it also loads the public room's latest page), and again whenever
:meth:`History.request_sync` asks, e.g. on a gap or a ``resync`` frame. A catch-up that fails
(``unavailable``, no answer) is tried again with backoff on the same link; sending does not
wait for it.

The sync cursor only advances from sync pages, never from live messages or history pages: live
delivery can miss a message without the connection noticing (one committed while the gateway
was still binding this user's routing keys, one dropped from a full gateway queue), and a
cursor taken from a later message would skip it for good. Starting the next sync from the last
*synced* id re-fetches a little, and the store drops the duplicates.

At login the cursor is the one kept from the last session on this computer, so everything that
arrived meanwhile (private messages included) is fetched. On a computer that never synced this
account it starts just before the public page loaded at login (at 0 when that page is the whole
room): everything from then on is fetched; older private conversations load when opened.

**Gaps.** A live message carries ``prev_id``, the id of the message before it in its
conversation. When that is above the cursor and unknown here, something was missed: sync now
(:meth:`History.is_gap`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chase.logging import get_logger
from chase.schemas import ChatMessage, HistoryFrame, HistoryPageFrame, SyncFrame, SyncPageFrame
from client.core.backoff import BackoffPolicy, Sleep
from client.core.conversations import PUBLIC, ConversationId, ConversationStore, Room
from client.core.errors import ClientError, NotConnected
from client.core.events import EventHub, HistoryLoaded, Source
from client.core.requests import PendingRequests, new_request_id
from client.core.transport import Link

log = get_logger(__name__)

#: Puts messages into the store and tells the UI; returns the ones that were new.
AddMessages = Callable[[list[ChatMessage], Source], list[ChatMessage]]


class History:
    def __init__(self, store: ConversationStore, hub: EventHub, *, add: AddMessages, requests: PendingRequests,
                 link: Callable[[], Link | None], timeout: float, page_size: int, policy: BackoffPolicy,
                 sleep: Sleep, cursor: int | None = None,
                 on_cursor: Callable[[int], None] | None = None) -> None:
        self._store = store
        self._hub = hub
        self._add = add
        self._requests = requests
        self._link = link
        self._timeout = timeout
        self._page_size = page_size
        self._policy = policy
        self._sleep = sleep
        #: Everything visible up to this id is known here; None until the first catch-up decides.
        self._cursor = cursor
        self._on_cursor = on_cursor or (lambda _cursor: None)
        self._bootstrapped = False
        self._wanted = asyncio.Event()

    @property
    def cursor(self) -> int | None:
        return self._cursor

    def request_sync(self) -> None:
        """Catch up as soon as possible (now, or right after the current catch-up)."""
        self._wanted.set()

    def is_gap(self, message: ChatMessage) -> bool:
        """True when ``message`` (live) shows that one before it was missed: the caller syncs."""
        prev = message.prev_id
        return prev is not None and prev > (self._cursor or 0) and prev not in self._store

    async def keep_up(self, attempted: Callable[[], None]) -> None:
        """Catch up now and whenever asked, until the link drops; ``attempted`` after each try."""
        self._wanted.set()
        failures = 0
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self._catch_up()
                failures = 0
            except NotConnected:
                attempted()
                return  # the link dropped: the next link catches up again
            except ClientError as exc:
                failures += 1
                log.info("client.catch_up_failed", code=str(exc.code), failures=failures)
                attempted()
                self._wanted.set()
                await self._sleep(self._policy.delay(min(failures, self._policy.max_attempts)))
                continue
            attempted()

    async def _catch_up(self) -> None:
        if self._bootstrapped:
            await self._sync(Source.SYNC)
            return
        page = await self._page(PUBLIC, None)
        self._add(page.messages, Source.HISTORY)
        self._store.mark_history(PUBLIC, has_more=page.has_more)
        self._hub.emit(HistoryLoaded(PUBLIC, page.has_more))
        if self._cursor is None:
            # Not from the page's newest id: private messages older than it would be skipped.
            oldest = min((m.id for m in page.messages), default=1)
            self._cursor = oldest - 1 if page.has_more else 0
            self._on_cursor(self._cursor)
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
            frame = SyncFrame(request_id=new_request_id(), after_id=self._cursor or 0)
            page = await self._requests.ask(self._link(), frame, SyncPageFrame, self._timeout)
            self._add(page.messages, source)
            if page.messages:
                self._cursor = max([self._cursor or 0, *(m.id for m in page.messages)])
                self._on_cursor(self._cursor)
            if not page.has_more or not page.messages:
                return

    async def _page(self, conversation: ConversationId, before_id: int | None) -> HistoryPageFrame:
        if isinstance(conversation, Room):
            frame = HistoryFrame(request_id=new_request_id(), room_id=conversation.id, before_id=before_id,
                                 limit=self._page_size)
        else:
            frame = HistoryFrame(request_id=new_request_id(), with_user_id=conversation, before_id=before_id,
                                 limit=self._page_size)
        return await self._requests.ask(self._link(), frame, HistoryPageFrame, self._timeout)
