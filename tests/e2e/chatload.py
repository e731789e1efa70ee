"""A minimal chat client for the fault suite: it sends, resends what was not acknowledged,
catches up, and records what it saw, so a test can count what the system did under a fault.

Each :class:`LoadClient` is one user on one connection at a time. It keeps an outbox in the
order its messages were made and keeps at most ``window`` of them in flight; an unacknowledged
message is sent again (same ``client_msg_id``) after a retryable error or a lost connection,
earliest first. Its sync cursor moves only from sync pages; it syncs at once on ``resync``,
and when a live message's ``prev_id`` says it missed one. Every transmission's wait for an
answer (ack, error, or the connection closing) is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import ssl
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chase.schemas import (
    AckFrame,
    ChatMessage,
    ErrorFrame,
    MessageFrame,
    ResyncFrame,
    SyncPageFrame,
    decode_server_frame,
)

#: Pause before a refused message is sent again (and between reconnection attempts).
RETRY_PAUSE = 0.3


@dataclass
class Outgoing:
    seq: int
    client_msg_id: str
    body: str
    recipient_id: int | None
    #: When the transmission in flight was sent (loop time); None: not in flight.
    sent_at: float | None = None
    not_before: float = 0.0
    message_id: int | None = None
    #: Sent as an end-to-end encrypted message: ``body`` travels only inside ``ciphertext``.
    encrypted: bool = False

    def fields(self) -> dict[str, object]:
        """The ``send`` frame's content. An encrypted one carries an opaque envelope (the
        services cannot tell it from real Olm output: delivery is what is measured here)."""
        if not self.encrypted:
            return {"body": self.body}
        return {"body": "", "ciphertext": envelope(self.body)}


def envelope(text: str) -> dict[str, object]:
    sealed = base64.b64encode(text.encode()).decode()
    return {"algorithm": "chase.olm.v1", "sender_device": "load", "sender_key": "A" * 43,
            "recipients": [{"device_id": "load", "type": 1, "body": sealed}], "backups": []}


def opened(body: str, ciphertext: str | None) -> str:
    """The text of a stored row: its body, or what the load's envelope holds."""
    if ciphertext is None:
        return body
    return base64.b64decode(json.loads(ciphertext)["recipients"][0]["body"]).decode()


@dataclass
class LoadClient:
    name: str
    user_id: int
    token: str
    #: Gateway ports, preferred first: the next is tried when one refuses or is gone.
    ports: list[int]
    ssl_context: ssl.SSLContext
    peers: list[int]
    window: int = 4
    made: list[Outgoing] = field(default_factory=list)
    outbox: list[Outgoing] = field(default_factory=list)
    transcript: dict[int, ChatMessage] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)
    #: Non-retryable errors (a healthy run has none).
    refusals: list[ErrorFrame] = field(default_factory=list)
    live_repeats: int = 0
    resyncs: int = 0
    gap_syncs: int = 0
    connections: int = 0
    cursor: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ws: ClientConnection | None = None
        self._need_sync = True
        self._sync_in_flight: str | None = None
        self._sync_not_before = 0.0
        self._synced = asyncio.Event()
        self._requests = itertools.count()
        self._stopping = False
        self._final_sync_asked = False
        self._final_allowed = False
        #: A sync asked after the outbox emptied has completed: the transcript is whole.
        self._final_synced = False
        self._sync_is_final = False
        self.deadline = float("inf")
        #: Set once the first catch-up after connecting is done (the load may start).
        self.ready = asyncio.Event()
        #: Set once :meth:`finish` was called and every message made is acked (or refused).
        self.drained = asyncio.Event()

    # --- what the test drives ---------------------------------------------------------------

    def make(self, count: int = 1) -> None:
        """Queue ``count`` new messages (every third one private to a peer)."""
        for _ in range(count):
            seq = len(self.made)
            recipient = self.peers[seq % len(self.peers)] if seq % 3 == 2 and self.peers else None
            # Half of the private messages are end-to-end encrypted.
            item = Outgoing(seq, f"{self.name}-{seq}", f"{self.name} says {seq}", recipient,
                            encrypted=recipient is not None and seq % 6 == 5)
            self.made.append(item)
            self.outbox.append(item)

    async def run(self) -> None:
        """Connect (again and again) until :meth:`finish` was called and everything is acked and
        synced, or :attr:`deadline` (loop time, set by the test) passes."""
        port_index = 0
        while not self._done():
            deadline = self.deadline
            if self._loop.time() > deadline:
                return
            port = self.ports[port_index % len(self.ports)]
            try:
                async with connect(
                    f"wss://127.0.0.1:{port}",
                    ssl=self.ssl_context,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    open_timeout=5,
                    close_timeout=2,
                ) as ws:
                    await self._session(ws, deadline)
            except (OSError, TimeoutError, ConnectionClosed, InvalidStatus):
                pass
            if self._done():
                return
            self._connection_lost()
            port_index += 1 if self._ws is None else 0
            self._ws = None
            await asyncio.sleep(RETRY_PAUSE)

    def finish(self, deadline: float) -> None:
        """Make no more messages; give up at ``deadline`` (loop time)."""
        self._stopping = True
        self.deadline = deadline
        self._check_drained()

    def _check_drained(self) -> None:
        if self._stopping and not self.outbox:
            self.drained.set()

    def close_out(self) -> None:
        """Everyone's messages are acked: sync one last time, then leave."""
        self._final_allowed = True

    def state(self) -> str:
        """One line for a failing test's output."""
        head = self.outbox[:3]
        return (f"{self.name}: made={len(self.made)} unacked={len(self.outbox)} connections={self.connections} "
                f"need_sync={self._need_sync} sync_in_flight={self._sync_in_flight} synced={self._synced.is_set()} "
                f"head={[(i.client_msg_id, i.sent_at is not None, round(i.not_before, 1)) for i in head]}")

    @property
    def acked(self) -> list[Outgoing]:
        return [item for item in self.made if item.message_id is not None]

    # --- one connection -------------------------------------------------------------------

    def _done(self) -> bool:
        return self._stopping and not self.outbox and self._final_synced and not self._need_sync

    async def _session(self, ws: ClientConnection, deadline: float) -> None:
        hello = decode_server_frame(await asyncio.wait_for(ws.recv(), 10))
        if hello.type != "hello":
            return
        self._ws = ws
        self.connections += 1
        self._need_sync = True  # whatever happened while we were away
        self._sync_in_flight = None
        reader = self._loop.create_task(self._read(ws))
        try:
            while not self._done() and not reader.done() and self._loop.time() < self.deadline:
                await self._write(ws)
                await asyncio.wait({reader}, timeout=0.02)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if self._done():
                await ws.close()

    async def _write(self, ws: ClientConnection) -> None:
        now = self._loop.time()
        if self._final_allowed and not self.outbox and not self._final_sync_asked:
            # Everything is acked: one last catch-up, so the transcript is complete.
            self._final_sync_asked = True
            self._need_sync = True
            self._synced.clear()
        if self._need_sync and self._sync_in_flight is None and now >= self._sync_not_before:
            self._need_sync = False
            self._synced.clear()
            await self._ask_sync(ws)
        in_flight = sum(item.sent_at is not None for item in self.outbox)
        for item in self.outbox:
            if in_flight >= self.window:
                break
            if item.sent_at is not None:
                continue
            if item.not_before > now:
                break  # keep the order: nothing overtakes a message waiting to be resent
            item.sent_at = now
            in_flight += 1
            frame = {"type": "send", "client_msg_id": item.client_msg_id, "recipient_id": item.recipient_id,
                     **item.fields()}
            await ws.send(json.dumps(frame))

    async def _ask_sync(self, ws: ClientConnection) -> None:
        request_id = f"sync-{next(self._requests)}"
        if self._sync_in_flight is None:  # the first page of a catch-up
            self._sync_is_final = self._final_sync_asked
        self._sync_in_flight = request_id
        await ws.send(json.dumps({"type": "sync", "request_id": request_id, "after_id": self.cursor}))

    async def _read(self, ws: ClientConnection) -> None:
        async for data in ws:
            frame = decode_server_frame(data)
            now = self._loop.time()
            if isinstance(frame, AckFrame):
                self._answered(frame.client_msg_id, now, acked=frame.message_id)
            elif isinstance(frame, ErrorFrame):
                self._on_error(frame, now)
            elif isinstance(frame, MessageFrame):
                self._on_message(frame.message)
            elif isinstance(frame, SyncPageFrame):
                for message in frame.messages:
                    self._keep(message)
                if frame.messages:
                    self.cursor = max(self.cursor, frame.messages[-1].id)
                if frame.has_more:
                    await self._ask_sync(ws)
                else:
                    self._sync_in_flight = None
                    if not self._need_sync:
                        self._synced.set()
                        self.ready.set()
                        self._final_synced = self._sync_is_final
            elif isinstance(frame, ResyncFrame):
                self.resyncs += 1
                self._need_sync = True

    def _answered(self, client_msg_id: str, now: float, *, acked: int | None = None) -> Outgoing | None:
        item = next((i for i in self.outbox if i.client_msg_id == client_msg_id), None)
        if item is None:
            return None
        if item.sent_at is not None:
            self.waits.append(now - item.sent_at)
            item.sent_at = None
        if acked is not None:
            item.message_id = acked
            self.outbox.remove(item)
            self._check_drained()
        return item

    def _on_error(self, frame: ErrorFrame, now: float) -> None:
        if frame.request_id is not None and frame.request_id == self._sync_in_flight:
            self._sync_in_flight = None
            self._need_sync = True
            self._sync_not_before = now + RETRY_PAUSE
            return
        if frame.client_msg_id is None:
            return
        item = self._answered(frame.client_msg_id, now)
        if item is None:
            return
        if frame.retryable:
            item.not_before = now + RETRY_PAUSE
        else:
            self.refusals.append(frame)
            self.outbox.remove(item)
            self._check_drained()

    def _on_message(self, message: ChatMessage) -> None:
        if message.prev_id is not None and message.prev_id > self.cursor and message.prev_id not in self.transcript:
            self.gap_syncs += 1
            self._need_sync = True
        self._keep(message)

    def _keep(self, message: ChatMessage) -> None:
        if message.id in self.transcript:
            self.live_repeats += 1
        self.transcript[message.id] = message

    def _connection_lost(self) -> None:
        now = self._loop.time()
        for item in self.outbox:
            if item.sent_at is not None:
                # The closed connection is the answer: nothing more will come for it.
                self.waits.append(now - item.sent_at)
                item.sent_at = None
        self._sync_in_flight = None
        self._need_sync = True
