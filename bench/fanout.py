"""Public fan-out side by side: N members in one room, the message rate stepped to saturation.

The same workload for every system (the bare ``websockets`` ceiling in ``bench.bare``, ChaSe
embedded, ChaSe fleet, and Prosody's MUC through the driver in ``bench.prosody``): S senders post ~100-character messages to the public room at a fixed,
stepped rate; N receivers only read, over TLS (verified against the run's CA). A step lasts
``step_seconds``; the next offers twice as many deliveries per second, until the system
saturates (delivery ratio < 0.95 or p99 latency > 1 s) or the steps run out.

The receivers are deliberately cheap, so that the load generator takes as little of the shared
CPU as it can: a raw ``asyncio.Protocol`` over TLS that does the opening handshake itself and
reads WebSocket frames with a few byte operations (no compression is offered, to any system).
Latency is read from the body: every message carries its step and the sender's
``perf_counter_ns`` (one clock, this process).

Also measured on the same connections:

- **idle memory**: the server process's resident memory before and after the N receivers
  connected (and said hello), divided by N, with nothing else going on;
- **reconnect storm**: every receiver dropped at once (TCP abort), then all N reconnect at
  the same moment; time until every one has its ``hello`` (ChaSe: and its first ``sync_page``;
  Prosody: its own presence in the room, and the answer to a query of the room's archive),
  and how many were refused.

The load generator's own CPU is recorded per step (``client_cores``): near one core, it may be
what limits the step, not the server.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import ssl
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.machine import cpu_seconds
from bench.stats import latency_summary

#: A step counts as saturated below this delivery ratio or above this p99.
MIN_RATIO = 0.95
MAX_P99_MS = 1000.0
BODY_CHARS = 100
#: How long the reconnect storm may take before it is reported unfinished.
STORM_SECONDS = 60.0
#: Handshakes the storm keeps in progress at once: as many as a server's listen backlog (100
#: by default) takes, so the storm measures the server, not the kernel dropping SYNs.
STORM_CONCURRENCY = 100
_BODY_MARK = b'"body":"s'
_SYNC = json.dumps({"type": "sync", "after_id": 0, "limit": 1}).encode()


@dataclass(frozen=True)
class FanoutPlan:
    sizes: tuple[int, ...] = (200, 1000)
    senders: int = 4
    #: Offered deliveries/s of the first step; each next step doubles it.
    first_rate: int = 5_000
    max_steps: int = 6
    step_seconds: float = 3.0
    drain_seconds: float = 2.0
    #: The N at which idle memory and the reconnect storm are measured (the largest size).
    storm: bool = True


def body(step: int, n: int) -> str:
    """``s<step>t<perf_counter_ns> `` padded to BODY_CHARS: what a receiver reads latency from."""
    head = f"s{step:02d}t{time.perf_counter_ns():019d} {n} "
    return (head + "x" * BODY_CHARS)[:BODY_CHARS]


@dataclass
class Tally:
    """What every receiver read, shared by all of them (one event loop)."""

    counts: dict[int, int] = field(default_factory=dict)
    latencies: dict[int, list[float]] = field(default_factory=dict)
    last_arrival: dict[int, float] = field(default_factory=dict)
    hellos: int = 0
    synced: int = 0
    closes: dict[str, int] = field(default_factory=dict)
    sync_after_hello: bool = False
    #: Receivers told 1013 ("try again later") while being seated and seated on a later try,
    #: by try: they are not in ``closes`` (which counts only those never seated, or closed since).
    retried: dict[str, int] = field(default_factory=dict)

    def on_text(self, payload: bytes, now_ns: int) -> None:
        if payload.startswith(b'{"type":"sync_page"'):  # first: a page holds message bodies too
            self.synced += 1
            return
        i = payload.find(_BODY_MARK)
        if i >= 0:
            step = int(payload[i + 9:i + 11])
            sent = int(payload[i + 12:i + 31])
            self.counts[step] = self.counts.get(step, 0) + 1
            self.latencies.setdefault(step, []).append((now_ns - sent) / 1e9)
            self.last_arrival[step] = now_ns / 1e9
        elif payload.startswith(b'{"type":"hello"'):
            self.hellos += 1


class Receiver(asyncio.Protocol):
    """A read-only WebSocket client with as little Python per frame as it can have."""

    def __init__(self, tally: Tally, request: bytes) -> None:
        self.tally = tally
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        #: Why it was closed, as counted in ``tally.closes`` (None: open, or dropped by us).
        self.close_reason: str | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def send_text(self, data: bytes) -> None:
        # Client frames are masked; a zero mask leaves the payload as it is.
        n = len(data)
        header = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
        assert self.transport is not None
        self.transport.write(header + b"\0\0\0\0" + data)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[:end]:
                self._closed_with("http " + bytes(buf[:buf.find(b"\r\n")]).decode(errors="replace"))
                return
            self.upgraded = True
            del buf[:end + 4]
        now = time.perf_counter_ns()
        pos, size = 0, len(buf)
        tally = self.tally
        while size - pos >= 2:
            opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                start = pos + 10
            if size - start < length:
                break
            payload = bytes(buf[start:start + length])
            pos = start + length
            if opcode == 1:
                tally.on_text(payload, now)
                if tally.sync_after_hello and payload.startswith(b'{"type":"hello"'):
                    self.send_text(_SYNC)
            elif opcode == 9:  # ping: answer, or the server drops us
                self.transport.write(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload)
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._closed_with(str(code))
                break
        del buf[:pos]

    def _closed_with(self, why: str) -> None:
        self.close_reason = why
        self.tally.closes[why] = self.tally.closes.get(why, 0) + 1
        if self.transport is not None:
            self.transport.abort()


def _request(url: str, token: str | None) -> bytes:
    parts = urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


#: Tries a receiver told 1013 ("try again later") while being seated gets, as a client would.
SEAT_TRIES = 3
SEAT_RETRY_SECONDS = 1.0
_TRY_AGAIN = "1013"


async def open_receivers(url: str, context: ssl.SSLContext, tokens: list[str | None], tally: Tally,
                         *, concurrency: int = 10, timeout: float = 120.0,
                         tries: int = 1) -> list[Receiver]:
    """Open one receiver per token (``concurrency`` handshakes at a time) and wait until each one
    has its hello or was closed (``tally.closes`` says why).

    A receiver closed with 1013 ("try again later": a connect that waited too long in one of
    the gateway's bounded lines) tries again after a second, up to ``tries`` times in all, as a
    client does; seated on a later try it counts in ``tally.retried``, not in ``tally.closes``.
    The fan-out seats its receivers with ``SEAT_TRIES``; the reconnect storm keeps one try: how
    many are refused is what it measures."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    receivers: list[Receiver] = []

    async def one(token: str | None) -> Receiver | None:
        async with gate:
            try:
                _, proto = await loop.create_connection(lambda: Receiver(tally, _request(url, token)),
                                                        parts.hostname, parts.port, ssl=context,
                                                        server_hostname=parts.hostname)
            except (OSError, ssl.SSLError) as exc:
                # Refused before the WebSocket opened (a full listen backlog, a TLS time-out).
                why = f"connect: {type(exc).__name__}"
                tally.closes[why] = tally.closes.get(why, 0) + 1
                return None
            receivers.append(proto)
            return proto

    async with asyncio.timeout(timeout):
        todo = list(tokens)
        for attempt in range(1, tries + 1):
            target = tally.hellos + sum(tally.closes.values()) + len(todo)
            opened = await asyncio.gather(*(one(t) for t in todo))
            while tally.hellos + sum(tally.closes.values()) < target:  # noqa: ASYNC110 - polled, not signalled per frame
                await asyncio.sleep(0.05)
            again = [t for t, r in zip(todo, opened, strict=True) if r is not None and r.close_reason == _TRY_AGAIN]
            if not again or attempt == tries:
                break
            for r in opened:
                if r is not None and r.close_reason == _TRY_AGAIN:
                    receivers.remove(r)
            tally.closes[_TRY_AGAIN] -= len(again)
            if not tally.closes[_TRY_AGAIN]:
                del tally.closes[_TRY_AGAIN]
            key = f"try {attempt + 1}"
            tally.retried[key] = tally.retried.get(key, 0) + len(again)
            todo = again
            await asyncio.sleep(SEAT_RETRY_SECONDS)
    return receivers


def close_receivers(receivers: list[Receiver]) -> None:
    for r in receivers:
        if r.transport is not None:
            r.transport.abort()


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class WebSocketSender:
    """A sending ChaSe (or bare) connection: ``send`` frames, everything it reads drained."""

    def __init__(self, ws: ClientConnection, drain: asyncio.Task) -> None:
        self.ws = ws
        self.drain = drain

    async def post(self, text: str, client_msg_id: str) -> bool:
        """Send one message; False when the connection is closed."""
        frame = json.dumps({"type": "send", "client_msg_id": client_msg_id, "recipient_id": None, "body": text})
        try:
            await self.ws.send(frame)
        except ConnectionClosed:
            return False
        return True

    async def close(self) -> None:
        await self.ws.close()
        self.drain.cancel()


class WebSocketDriver:
    """How the workload speaks to ChaSe and the bare server. Another system (``bench.prosody``)
    brings a driver of its own with the same methods; the workload itself does not change."""

    def __init__(self, url: str, context: ssl.SSLContext) -> None:
        self.url = url
        self.context = context

    async def open_receivers(self, tokens: list[Any], tally: Tally, *, concurrency: int = 10,
                             timeout: float = 120.0, tries: int = 1) -> list[Receiver]:
        return await open_receivers(self.url, self.context, tokens, tally, concurrency=concurrency, timeout=timeout,
                                    tries=tries)

    def close(self, receivers: list[Any]) -> None:
        close_receivers(receivers)

    async def open_sender(self, token: Any) -> WebSocketSender:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        ws = await connect(self.url, ssl=self.context, additional_headers=headers, compression=None,
                           open_timeout=30, max_size=2**22, max_queue=None)

        async def drain() -> None:
            try:
                async for _ in ws:
                    pass
            except ConnectionClosed:
                pass

        return WebSocketSender(ws, asyncio.get_running_loop().create_task(drain()))


async def _send_step(senders: list[Any], step: int, rate: float, seconds: float) -> int:
    """Send ``rate`` messages/s in all for ``seconds``, evenly over the senders; how many went."""
    sent = 0
    started = time.perf_counter()
    tick = 0.005
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return sent
        due = min(int(elapsed * rate) + 1, int(seconds * rate))
        while sent < due:
            sender = senders[sent % len(senders)]
            if not await sender.post(body(step, sent), f"f{step}-{sent}-{time.perf_counter_ns()}"):
                return sent
            sent += 1
        await asyncio.sleep(tick)


async def run_steps(senders: list[Any], tally: Tally, n: int, plan: FanoutPlan, pids: list[int],
                    first_step: int) -> list[dict[str, Any]]:
    """The stepped load on ``n`` connected receivers; one result per step, until saturation."""
    steps = []
    offered = plan.first_rate
    for k in range(plan.max_steps):
        step = first_step + k
        rate = offered / n
        cpu_before = sum(cpu_seconds(p) or 0.0 for p in pids)
        client_before = cpu_seconds(os.getpid()) or 0.0
        t0 = time.perf_counter()
        sent = await _send_step(senders, step, rate, plan.step_seconds)
        send_end = time.perf_counter()
        expected = sent * n
        deadline = send_end + plan.drain_seconds
        while tally.counts.get(step, 0) < expected and time.perf_counter() < deadline:  # noqa: ASYNC110 - polled, not signalled per frame
            await asyncio.sleep(0.05)
        cpu = sum(cpu_seconds(p) or 0.0 for p in pids) - cpu_before
        client_cpu = (cpu_seconds(os.getpid()) or 0.0) - client_before
        wall = time.perf_counter() - t0
        got = tally.counts.get(step, 0)
        last = tally.last_arrival.get(step, send_end)
        latency = latency_summary(tally.latencies.pop(step, []))
        result = {
            "n": n,
            "offered_deliveries_per_s": offered,
            "messages_per_s": round(rate, 2),
            "sent": sent,
            "deliveries": got,
            "expected": expected,
            "ratio": round(got / expected, 4) if expected else None,
            "deliveries_per_s": round(got / max(last - t0, 1e-9), 1),
            "latency": latency,
            "server_cpu_seconds": round(cpu, 2),
            "server_us_per_delivery": round(cpu / got * 1e6, 2) if got else None,
            # The load generator (this process: senders and receivers) shares the CPU: a share of
            # one core near 1.0 means it, not the server, may be what limits the step.
            "client_cpu_seconds": round(client_cpu, 2),
            "client_cores": round(client_cpu / wall, 2) if wall > 0 else None,
            "closes": dict(tally.closes),
        }
        steps.append(result)
        saturated = (result["ratio"] or 0) < MIN_RATIO or (latency["p99_ms"] or 0) > MAX_P99_MS or tally.closes
        if saturated:
            result["saturated"] = True
            break
        offered *= 2
        # Let the next step start from an empty pipeline.
        await asyncio.sleep(0.3)
    return steps


async def measure_system(name: str, url: str, context: ssl.SSLContext, tokens: list[Any],
                         sender_tokens: list[Any], server_pids: list[int], plan: FanoutPlan,
                         *, synced: bool, driver: Any = None) -> dict[str, Any]:
    """Every size of ``plan`` on one running system, then idle memory and the storm at the largest.

    ``tokens``: at least max(plan.sizes) receiver tokens (None: no authentication);
    ``server_pids``: the processes whose CPU and memory are the system's; ``driver``: how to
    speak to the system (default: WebSocket at ``url``, see :class:`WebSocketDriver`).
    """
    driver = driver or WebSocketDriver(url, context)
    result: dict[str, Any] = {"system": name, "sizes": {}}
    senders = []
    try:
        for token in sender_tokens:
            senders.append(await driver.open_sender(token))
        step = 1
        for n in plan.sizes:
            tally = Tally()
            before = {p: rss_kib(p) for p in server_pids}
            receivers = []
            try:
                started = time.perf_counter()
                # Seated as clients seat themselves: told 1013, a WebSocket client tries again
                # (Prosody's driver seats its own way, see bench.prosody).
                seat = (functools.partial(driver.open_receivers, tries=SEAT_TRIES)
                        if isinstance(driver, WebSocketDriver) else driver.open_receivers)
                receivers = await seat(tokens[:n], tally)
                connect_seconds = time.perf_counter() - started
                await asyncio.sleep(1.0)  # let the presence news of the last connects settle
                after = {p: rss_kib(p) for p in server_pids}
                grown = sum((after[p] or 0) - (before[p] or 0) for p in server_pids)
                entry: dict[str, Any] = {
                    "connect_seconds": round(connect_seconds, 2),
                    "seated_on_a_later_try": dict(tally.retried),
                    "idle_kib_per_connection": round(grown / n, 1),
                    "rss_kib_after_connect": sum(v or 0 for v in after.values()),
                    "steps": await run_steps(senders, tally, n, plan, server_pids, step),
                }
                step += plan.max_steps
                if plan.storm and n == max(plan.sizes):
                    entry["storm"] = await _storm(driver, tokens[:n], receivers, synced=synced)
                    receivers = entry["storm"].pop("_receivers")
                result["sizes"][str(n)] = entry
            finally:
                driver.close(receivers)
                await asyncio.sleep(0.5)
    finally:
        for sender in senders:
            await sender.close()
    return result


async def _storm(driver: Any, tokens: list[Any], receivers: list[Any], *, synced: bool) -> dict[str, Any]:
    """Drop every receiver at once, then reconnect them all at once."""
    driver.close(receivers)
    await asyncio.gather(*(r.closed for r in receivers), return_exceptions=True)
    await asyncio.sleep(1.0)  # the server sees every connection gone
    tally = Tally(sync_after_hello=synced)
    started = time.perf_counter()
    fresh: list[Any] = []
    error = None
    hello_seconds = synced_seconds = None
    try:
        fresh = await driver.open_receivers(tokens, tally, concurrency=STORM_CONCURRENCY, timeout=STORM_SECONDS)
        if not tally.closes:
            hello_seconds = time.perf_counter() - started
        if synced:
            async with asyncio.timeout(STORM_SECONDS - (time.perf_counter() - started)):
                while tally.synced + sum(tally.closes.values()) < len(tokens):  # noqa: ASYNC110 - polled
                    await asyncio.sleep(0.02)
            if not tally.closes:
                synced_seconds = time.perf_counter() - started
    except (TimeoutError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {
        "clients": len(tokens),
        "all_hello_seconds": round(hello_seconds, 2) if hello_seconds is not None else None,
        "all_synced_seconds": round(synced_seconds, 2) if synced_seconds is not None else None,
        "hellos": tally.hellos,
        "synced": tally.synced if synced else None,
        "refused": dict(tally.closes),
        "error": error,
        "_receivers": fresh,
    }


def saturation(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The best step that kept up (ratio >= 0.95, p99 <= 1 s): its deliveries/s and p99."""
    good = [s for s in steps if not s.get("saturated")]
    if not good:
        return {"max_deliveries_per_s": None, "p99_ms": None, "us_per_delivery": None}
    best = max(good, key=lambda s: s["deliveries_per_s"])
    return {"max_deliveries_per_s": best["deliveries_per_s"], "p99_ms": best["latency"]["p99_ms"],
            "us_per_delivery": best["server_us_per_delivery"]}


#: How long one user's login may be told to wait (429) before the set-up fails.
LOGIN_SECONDS = 120.0


async def register_users(auth_url: str, ca_path: Path, count: int, password: str, prefix: str,
                         concurrency: int = 8) -> list[str]:
    """Register and log in ``count`` users; their tokens, in order."""
    from services.auth.client import AuthClient, AuthRejected

    tokens: list[str] = [""] * count
    gate = asyncio.Semaphore(concurrency)
    async with AuthClient(auth_url, ca_path=ca_path, timeout=60) as auth:
        async def one(i: int) -> None:
            async with gate:
                name = f"{prefix}{i}"
                await auth.register(name, password)
                # The auth service checks at most a few passwords per address at once and
                # answers the rest 429 with Retry-After: wait as told, within a bound, and
                # never hand out an empty token (it would be counted as a refused connect).
                deadline = time.monotonic() + LOGIN_SECONDS
                while True:
                    try:
                        tokens[i] = (await auth.login(name, password)).token
                        break
                    except AuthRejected as exc:
                        if exc.status != 429 or time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(exc.retry_after or 0.2)

        await asyncio.gather(*(one(i) for i in range(count)))
    return tokens

