"""The end-to-end load: K senders and R receivers on real WSS connections to one gateway.

Every sender posts M messages to the public room, keeping at most ``window`` sends without an
``ack``; every receiver only reads. All connections are opened the way ChaSe's own client
opens them (``websockets`` defaults, so permessage-deflate is negotiated; verified TLS against
the run's dev CA). Frames are read with ``json.loads``, not the pydantic models, so the load
generator spends as little CPU per frame as it can: it shares the machine with the system
under test.

Measured, all on one monotonic clock in this process:

- ack latency: ``send`` written to the socket -> its ``ack`` read;
- delivery latency: ``send`` written -> the ``message`` frame read by a receiver;
- acked messages/s: acks / (last ack - first send);
- fan-out deliveries/s: ``message`` frames read by every connection (receivers, and senders,
  who are in the public room too) / (last delivery - first send).

The run is bounded: it ends when every message is acked and every connection has read every
message, or at ``time_limit`` (then ``complete`` is false and the counts say how far it got).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.baselines import body_of
from bench.stats import latency_summary, rate

#: client_msg_id prefixes: warm-up sends are acked and read but not measured.
WARMUP, MEASURED = "w", "m"


@dataclass(frozen=True)
class LoadPlan:
    senders: int
    receivers: int
    messages_per_sender: int
    window: int
    body_size: int = 100
    warmup_per_sender: int = 5
    time_limit: float = 60.0
    #: Part of every client_msg_id, so several loads on one system never reuse an id.
    tag: str = "a"
    #: "deflate": permessage-deflate, as ChaSe's client negotiates by default; None: off.
    compression: str | None = "deflate"

    @property
    def total(self) -> int:
        return self.senders * self.messages_per_sender


@dataclass
class _Tally:
    """What every connection saw, shared by all of them (one event loop, no locks)."""

    plan: LoadPlan
    sent_at: dict[str, float] = field(default_factory=dict)
    ack_latencies: list[float] = field(default_factory=list)
    delivery_latencies: list[float] = field(default_factory=list)
    acked: int = 0
    warmup_acked: int = 0
    receiver_deliveries: int = 0
    echo_deliveries: int = 0
    duplicates: int = 0
    first_send: float | None = None
    last_ack: float = 0.0
    last_delivery: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    closes: list[str] = field(default_factory=list)
    peers_done: int = 0
    peers_warm: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    warm: asyncio.Event = field(default_factory=asyncio.Event)


class _Peer:
    """One connection: reads every frame; a sender also writes its messages through a window."""

    def __init__(self, ws: ClientConnection, name: str, tally: _Tally, *, sender: bool, peers: int) -> None:
        self.ws = ws
        self.name = name
        self.tally = tally
        self.sender = sender
        self.peers = peers
        self.window = asyncio.Semaphore(tally.plan.window)
        self.pending: set[str] = set()
        self.seen: set[str] = set()
        self.warm_seen = 0
        self.hello: dict[str, Any] | None = None
        self.hello_received = asyncio.Event()
        self.leaving = False
        self.reader = asyncio.get_running_loop().create_task(self._read(), name=f"bench:{name}")

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self._on_frame(json.loads(raw), time.perf_counter())
        except ConnectionClosed:
            pass
        finally:
            if not self.leaving:
                code = self.ws.close_code
                self.tally.closes.append(f"{self.name}: closed by the server ({code} {self.ws.close_reason})")
                # Nothing more can complete: stop waiting instead of running into the time limit.
                self.tally.finished.set()
                self.tally.warm.set()

    def _on_frame(self, frame: dict[str, Any], now: float) -> None:
        kind = frame.get("type")
        tally = self.tally
        if kind == "message":
            cmid = frame["message"]["client_msg_id"]
            if cmid.startswith(WARMUP):
                self.warm_seen += 1
                if self.warm_seen == tally.plan.senders * tally.plan.warmup_per_sender:
                    tally.peers_warm += 1
                    self._check_warm()
                return
            if cmid in self.seen:
                tally.duplicates += 1
                return
            self.seen.add(cmid)
            tally.last_delivery = now
            if self.sender:
                tally.echo_deliveries += 1
            else:
                tally.receiver_deliveries += 1
                sent = tally.sent_at.get(cmid)
                if sent is not None:
                    tally.delivery_latencies.append(now - sent)
            if len(self.seen) == tally.plan.total:
                tally.peers_done += 1
                self._check_done()
        elif kind == "ack":
            cmid = frame["client_msg_id"]
            if cmid in self.pending:
                self.pending.discard(cmid)
                self.window.release()
                if cmid.startswith(WARMUP):
                    tally.warmup_acked += 1
                    self._check_warm()
                else:
                    tally.acked += 1
                    tally.last_ack = now
                    tally.ack_latencies.append(now - tally.sent_at[cmid])
                    self._check_done()
        elif kind == "error":
            tally.errors[frame.get("code", "?")] += 1
            cmid = frame.get("client_msg_id")
            # A refused send frees its place in the window; it is counted, not retried.
            if cmid in self.pending:
                self.pending.discard(cmid)
                self.window.release()
        elif kind == "hello":
            self.hello = frame
            self.hello_received.set()

    def _check_warm(self) -> None:
        plan = self.tally.plan
        if self.tally.warmup_acked == plan.senders * plan.warmup_per_sender and self.tally.peers_warm == self.peers:
            self.tally.warm.set()

    def _check_done(self) -> None:
        if self.tally.acked == self.tally.plan.total and self.tally.peers_done == self.peers:
            self.tally.finished.set()

    async def send_all(self, prefix: str, index: int, count: int) -> None:
        body_size = self.tally.plan.body_size
        for n in range(count):
            await self.window.acquire()
            cmid = f"{prefix}{self.tally.plan.tag}{index}-{n}"
            frame = json.dumps({"type": "send", "client_msg_id": cmid, "recipient_id": None,
                                "body": body_of(body_size, n)})
            self.pending.add(cmid)
            now = time.perf_counter()
            if self.tally.first_send is None and prefix == MEASURED:
                self.tally.first_send = now
            self.tally.sent_at[cmid] = now
            try:
                await self.ws.send(frame)
            except ConnectionClosed:
                return

    async def leave(self) -> None:
        self.leaving = True
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except (TimeoutError, ConnectionClosed):
            pass
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


async def _open(url: str, token: str, context: ssl.SSLContext, name: str, tally: _Tally, *, sender: bool,
                peers: int) -> _Peer:
    ws = await connect(
        url,
        ssl=context,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
        max_size=4 * 1024 * 1024,  # as ChaSe's client
        compression=tally.plan.compression,
    )
    return _Peer(ws, name, tally, sender=sender, peers=peers)


async def run_load(url: str, context: ssl.SSLContext, sender_tokens: list[str], receiver_tokens: list[str],
                   plan: LoadPlan, *, on_measure_start=None, on_measure_end=None) -> dict[str, Any]:  # noqa: ANN001
    """Connect, warm up, run ``plan`` and return what was measured. Connections are closed after.

    ``on_measure_start()`` / ``on_measure_end(seconds)`` bracket the measured phase (CPU probes).
    """
    tally = _Tally(plan)
    peers: list[_Peer] = []
    try:
        await _connect(url, context, sender_tokens, receiver_tokens, tally, peers)
        senders = [p for p in peers if p.sender]
        await _warm_up(senders, tally)
        if on_measure_start is not None:
            on_measure_start()
        started = time.perf_counter()
        complete = False
        try:
            async with asyncio.timeout(plan.time_limit):
                await asyncio.gather(*(p.send_all(MEASURED, i, plan.messages_per_sender)
                                       for i, p in enumerate(senders)))
                await tally.finished.wait()
                complete = not tally.closes
        except TimeoutError:
            pass
        cpu = on_measure_end(time.perf_counter() - started) if on_measure_end is not None else None
        result = _summary(tally, len(peers), tally.first_send or started, complete)
        result["gateway_limits"] = (peers[0].hello or {}).get("limits")
        result["websocket_extensions"] = [str(e.name) for e in peers[0].ws.protocol.extensions]
        result["cpu"] = cpu
        return result
    finally:
        await asyncio.gather(*(p.leave() for p in peers), return_exceptions=True)


async def _connect(url: str, context: ssl.SSLContext, sender_tokens: list[str], receiver_tokens: list[str],
                   tally: _Tally, peers: list[_Peer]) -> None:
    """Open every connection (into ``peers``, so the caller closes them) and wait for each hello."""
    total = len(sender_tokens) + len(receiver_tokens)
    async with asyncio.timeout(30):
        for i, token in enumerate(sender_tokens):
            peers.append(await _open(url, token, context, f"sender-{i}", tally, sender=True, peers=total))
        for i, token in enumerate(receiver_tokens):
            peers.append(await _open(url, token, context, f"receiver-{i}", tally, sender=False, peers=total))
        await asyncio.gather(*(p.hello_received.wait() for p in peers))


async def _warm_up(senders: list[_Peer], tally: _Tally) -> None:
    """A few messages per sender, acked and read by everyone before the clock starts: connections,
    the database pool and the broker's queues are then all in use."""
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(p.send_all(WARMUP, i, tally.plan.warmup_per_sender)
                                   for i, p in enumerate(senders)))
            await tally.warm.wait()
    except TimeoutError:
        tally.errors["warm-up timed out"] += 1
    if tally.closes:
        raise RuntimeError("; ".join(tally.closes))


def _summary(tally: _Tally, peers: int, first: float, complete: bool) -> dict[str, Any]:
    plan = tally.plan
    deliveries = tally.receiver_deliveries + tally.echo_deliveries
    return {
        "senders": plan.senders,
        "receivers": plan.receivers,
        "messages_per_sender": plan.messages_per_sender,
        "window": plan.window,
        "body_chars": plan.body_size,
        "tag": plan.tag,
        "messages": plan.total,
        "complete": complete,
        "acked": tally.acked,
        "seconds_to_last_ack": round(tally.last_ack - first, 3) if tally.acked else None,
        "acked_per_s": rate(tally.acked, tally.last_ack - first),
        "ack_latency": latency_summary(tally.ack_latencies),
        "delivery_latency": latency_summary(tally.delivery_latencies),
        "deliveries": deliveries,
        "receiver_deliveries": tally.receiver_deliveries,
        "sender_echo_deliveries": tally.echo_deliveries,
        "expected_deliveries": plan.total * peers,
        "deliveries_per_s": rate(deliveries, tally.last_delivery - first),
        "duplicates": tally.duplicates,
        "errors": dict(tally.errors),
        "unexpected_closes": tally.closes,
    }
