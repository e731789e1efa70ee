"""The in-process bus: a topic exchange in memory, for the embedded default and for unit tests.

It keeps RabbitMQ's semantics rather than a convenient subset, so code that works here works on
the broker: bindings by topic pattern, one copy per queue, events cross as JSON text (nothing is
shared by reference, malformed events fail to decode the same way), prefetch, ack / reject with
``redelivered`` on redelivery, unacked deliveries returned when a subscription is cancelled,
single-active-consumer, exclusive queues that vanish with their connection, ``max_length`` with
drop-head, a ``dead-letter`` queue for durable queues, ``delivery_limit`` counted per message
the way a quorum queue counts it (every return, requeue or consumer gone, adds one; past the
limit the message is dead-lettered), and request/reply.

One :class:`MemoryBroker` is the server; each :class:`MemoryBus` is one connection to it. A
bus made without a broker gets a private one. Deliveries reach a subscription's handler one at
a time in queue order; the handler may keep up to ``prefetch`` unacknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from chase.bus.port import (
    Bus,
    BusUnavailable,
    Delivery,
    Handler,
    QueueSpec,
    RequestTimeout,
    Responder,
    Subscription,
)
from chase.bus.responders import Responders
from chase.bus.topic import matches
from chase.logging import get_logger
from chase.schemas import Event, decode_event, encode

log = get_logger(__name__)

#: Relative name of the queue that receives what durable queues reject without requeue.
DEAD_LETTER_QUEUE = "dead-letter"


@dataclass(eq=False)
class _Message:
    body: bytes
    routing_key: str
    redelivered: bool = False
    reply_to: str | None = None
    correlation_id: str | None = None
    #: Returns so far (RabbitMQ's x-delivery-count on quorum queues).
    delivery_count: int = 0
    #: ``time.monotonic()`` after which nobody wants it (RabbitMQ's per-message expiration):
    #: dropped instead of delivered.
    expires_at: float | None = None


class MemoryBroker:
    """The shared state of one in-process broker: queues, bindings, reply addresses."""

    def __init__(self) -> None:
        self.queues: dict[str, _Queue] = {}
        self.reply_targets: dict[str, MemoryBus] = {}

    def route(self, namespace: str, message: _Message) -> int:
        """Put one copy of ``message`` on every queue of ``namespace`` bound for its key."""
        routed = 0
        for queue in list(self.queues.values()):
            if queue.namespace == namespace and queue.bindings.match(message.routing_key):
                queue.put(_Message(message.body, message.routing_key, False, message.reply_to, message.correlation_id,
                                   expires_at=message.expires_at))
                routed += 1
        return routed

    def dead_letter(self, queue: _Queue, message: _Message) -> None:
        if not queue.spec.durable:
            return
        target = self.queues.get(f"{queue.namespace}.{DEAD_LETTER_QUEUE}")
        if target is not None and target is not queue:
            target.put(_Message(message.body, message.routing_key))


class Bindings:
    """A queue's binding patterns, indexed so that routing costs O(words of the key), not
    O(bindings): a gateway holds one ``#.<user id>.#`` per connected user, and matching every
    event against thousands of them one by one made each publish (and each RPC reply) cost
    O(users) in a reconnect storm. Patterns of that one shape are kept as their word; the few
    others are matched one by one."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._all: set[str] = set()
        self._exact: set[str] = set()
        self._any_word: set[str] = set()  # "#.<word>.#"
        self._other: set[str] = set()
        self.update(patterns)

    def __contains__(self, pattern: object) -> bool:
        return pattern in self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def _bucket(self, pattern: str) -> set[str]:
        words = pattern.split(".")
        if "#" not in words and "*" not in words:
            return self._exact
        if len(words) == 3 and words[0] == words[2] == "#" and words[1] not in ("#", "*"):
            return self._any_word
        return self._other

    def add(self, pattern: str) -> None:
        self._all.add(pattern)
        bucket = self._bucket(pattern)
        bucket.add(pattern.split(".")[1] if bucket is self._any_word else pattern)

    def update(self, patterns: Iterable[str]) -> None:
        for pattern in patterns:
            self.add(pattern)

    def discard(self, pattern: str) -> None:
        if pattern not in self._all:
            return
        self._all.discard(pattern)
        bucket = self._bucket(pattern)
        bucket.discard(pattern.split(".")[1] if bucket is self._any_word else pattern)

    def match(self, routing_key: str) -> bool:
        """True when any pattern here routes ``routing_key`` to the queue."""
        if routing_key in self._exact:
            return True
        if self._any_word and not self._any_word.isdisjoint(routing_key.split(".")):
            return True
        return any(matches(p, routing_key) for p in self._other)


class _Queue:
    def __init__(self, broker: MemoryBroker, namespace: str, spec: QueueSpec, owner: MemoryBus | None) -> None:
        self.broker = broker
        self.namespace = namespace
        self.full_name = f"{namespace}.{spec.name}"
        self.spec = spec
        self.owner = owner
        self.bindings = Bindings(spec.bindings)
        self.ready: deque[_Message] = deque()
        self.ready_bytes = 0
        self.consumers: list[_Consumer] = []
        self._turn = itertools.count()

    def put(self, message: _Message) -> None:
        self.ready.append(message)
        self.ready_bytes += len(message.body)
        # RabbitMQ counts only ready messages against x-max-length(-bytes), and drop-head drops
        # the oldest.
        limit, byte_limit = self.spec.max_length, self.spec.max_length_bytes
        while self.ready and ((limit is not None and len(self.ready) > limit)
                              or (byte_limit is not None and self.ready_bytes > byte_limit)):
            self.ready_bytes -= len(self.ready.popleft().body)
        self.dispatch()

    def give_back(self, messages: list[_Message]) -> None:
        """Return unacked messages to the head of the queue, in their original order; one
        returned more often than the queue's ``delivery_limit`` is dead-lettered instead."""
        limit = self.spec.delivery_limit if self.spec.durable else None
        for message in reversed(messages):
            message.redelivered = True
            message.delivery_count += 1
            if limit is not None and message.delivery_count > limit:
                self.broker.dead_letter(self, message)
                continue
            self.ready.appendleft(message)
            self.ready_bytes += len(message.body)
        self.dispatch()

    def dispatch(self) -> None:
        """Hand ready messages to consumers with spare prefetch (never waits)."""
        while self.ready and self.consumers:
            candidates = self.consumers[:1] if self.spec.single_active_consumer else self.consumers
            start = next(self._turn)
            chosen = None
            for i in range(len(candidates)):
                consumer = candidates[(start + i) % len(candidates)]
                if consumer.has_room():
                    chosen = consumer
                    break
            if chosen is None:
                return
            message = self.ready.popleft()
            self.ready_bytes -= len(message.body)
            if message.expires_at is not None and message.expires_at <= time.monotonic():
                continue  # its requester gave up: answering it would only delay the others
            chosen.give(message)


class _MemoryDelivery(Delivery):
    def __init__(self, consumer: _Consumer, message: _Message, event: Event) -> None:
        self.event = event
        self.routing_key = message.routing_key
        self.redelivered = message.redelivered
        self.reply_to = message.reply_to
        self.correlation_id = message.correlation_id
        self.delivery_count = message.delivery_count if consumer.queue.spec.delivery_limit is not None else 0
        self._consumer = consumer
        self._message = message
        self.settled = False

    @property
    def stale(self) -> bool:
        return self._consumer.cancelled or id(self._message) not in self._consumer.outstanding

    async def ack(self) -> None:
        if not self.settled:
            self.settled = True
            self._consumer.settle(self._message)

    async def reject(self, *, requeue: bool) -> None:
        if self.settled:
            return
        self.settled = True
        if self._consumer.settle(self._message):
            if requeue:
                self._consumer.queue.give_back([self._message])
            else:
                self._consumer.queue.broker.dead_letter(self._consumer.queue, self._message)


class _Consumer(Subscription):
    def __init__(self, bus: MemoryBus, queue: _Queue, handler: Handler, prefetch: int) -> None:
        self.bus = bus
        self.queue = queue
        self.handler = handler
        self.prefetch = max(1, prefetch)
        #: Given to this consumer and not yet settled, in delivery order (dicts keep order).
        self.outstanding: dict[int, _Message] = {}
        self.inbox: asyncio.Queue[_Message] = asyncio.Queue()
        self.cancelled = False
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"bus:{queue.full_name}")

    def has_room(self) -> bool:
        return not self.cancelled and len(self.outstanding) < self.prefetch

    def give(self, message: _Message) -> None:
        self.outstanding[id(message)] = message
        self.inbox.put_nowait(message)

    def settle(self, message: _Message) -> bool:
        """Forget ``message``; False when it was already given back by :meth:`cancel`."""
        if self.outstanding.pop(id(message), None) is None:
            return False
        self.queue.dispatch()
        return True

    async def _run(self) -> None:
        while True:
            message = await self.inbox.get()
            if id(message) not in self.outstanding:
                continue
            await self._handle(message)
            # A handler that never awaits must still let the rest of the process run.
            await asyncio.sleep(0)

    async def _handle(self, message: _Message) -> None:
        try:
            event = decode_event(message.body)
        except ValidationError as exc:
            log.error("bus.malformed_event", queue=self.queue.full_name, routing_key=message.routing_key,
                      error=str(exc).splitlines()[0])
            if self.settle(message):
                self.queue.broker.dead_letter(self.queue, message)
            return
        delivery = _MemoryDelivery(self, message, event)
        try:
            await self.handler(delivery)
        except Exception:
            log.exception("bus.handler_failed", queue=self.queue.full_name, routing_key=message.routing_key)
            await delivery.reject(requeue=True)

    async def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        if self in self.queue.consumers:
            self.queue.consumers.remove(self)
        self.bus._subscriptions.discard(self)
        if self.task is not asyncio.current_task():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        returned = list(self.outstanding.values())
        self.outstanding.clear()
        self.queue.give_back(returned)


class MemoryBus(Bus):
    """One connection to an in-process broker (a private one unless ``broker`` is given)."""

    def __init__(self, namespace: str = "chase", *, broker: MemoryBroker | None = None) -> None:
        self.namespace = namespace
        self.broker = broker or MemoryBroker()
        self._open = False
        self._address = f"reply.{uuid.uuid4().hex}"
        self._pending: dict[str, asyncio.Future[Event]] = {}
        self._subscriptions: set[_Consumer] = set()
        self._responders: set[Responders] = set()

    def is_ready(self) -> bool:
        return self._open

    async def start(self) -> None:
        self._open = True
        self.broker.reply_targets[self._address] = self
        self._declare(QueueSpec(DEAD_LETTER_QUEUE))

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        self.broker.reply_targets.pop(self._address, None)
        for responders in list(self._responders):
            await responders.cancel()
        for sub in list(self._subscriptions):
            await sub.cancel()
        for name, queue in list(self.broker.queues.items()):
            if queue.owner is self:
                del self.broker.queues[name]
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BusUnavailable("the bus was closed while waiting for a reply"))

    def _check_open(self) -> None:
        if not self._open:
            raise BusUnavailable("the in-process bus is not started or already closed")

    def _declare(self, spec: QueueSpec) -> _Queue:
        full = f"{self.namespace}.{spec.name}"
        queue = self.broker.queues.get(full)
        if queue is None:
            queue = _Queue(self.broker, self.namespace, spec, self if spec.exclusive else None)
            self.broker.queues[full] = queue
        elif queue.owner is not None and queue.owner is not self:
            raise BusUnavailable(f"queue {full} is exclusive to another connection")
        queue.bindings.update(spec.bindings)
        return queue

    def _queue(self, queue_name: str) -> _Queue:
        queue = self.broker.queues.get(f"{self.namespace}.{queue_name}")
        if queue is None:
            raise KeyError(f"queue {queue_name!r} is not declared")
        return queue

    async def publish(self, routing_key: str, event: Event) -> None:
        self._check_open()
        self.broker.route(self.namespace, _Message(encode(event).encode(), routing_key))

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Publish bytes that may not be a valid event (tests of malformed input only)."""
        self._check_open()
        self.broker.route(self.namespace, _Message(body, routing_key))

    async def consume(self, queue: QueueSpec, handler: Handler, *, prefetch: int = 100) -> Subscription:
        self._check_open()
        declared = self._declare(queue)
        consumer = _Consumer(self, declared, handler, prefetch)
        declared.consumers.append(consumer)
        self._subscriptions.add(consumer)
        declared.dispatch()
        return consumer

    async def bind(self, queue_name: str, binding: str) -> None:
        self._check_open()
        self._queue(queue_name).bindings.add(binding)

    async def unbind(self, queue_name: str, binding: str) -> None:
        self._check_open()
        self._queue(queue_name).bindings.discard(binding)

    async def request(self, routing_key: str, event: Event, *, timeout: float = 5.0) -> Event:
        self._check_open()
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            # Expires with the wait: in a storm the responder skips what nobody waits for.
            message = _Message(encode(event).encode(), routing_key, reply_to=self._address,
                               correlation_id=correlation_id, expires_at=time.monotonic() + timeout)
            if self.broker.route(self.namespace, message) == 0:
                raise RequestTimeout(f"no responder is bound for {routing_key}")
            try:
                return await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise RequestTimeout(f"no reply to {routing_key} within {timeout}s") from None
        finally:
            self._pending.pop(correlation_id, None)

    def _broker_reply(self, reply_to: str, correlation_id: str, body: bytes) -> None:
        # Like direct reply-to: a reply for a requester that has gone is dropped.
        target = self.broker.reply_targets.get(reply_to)
        if target is not None:
            target._resolve(correlation_id, body)

    def _resolve(self, correlation_id: str, body: bytes) -> None:
        future = self._pending.get(correlation_id)
        if future is None or future.done():
            return
        try:
            future.set_result(decode_event(body))
        except ValidationError as exc:
            log.error("bus.malformed_reply", error=str(exc).splitlines()[0])

    async def serve(self, queue: QueueSpec, responder: Responder, *, prefetch: int = 10) -> Subscription:
        self._check_open()
        responders = Responders(responder, self._send_reply)
        responders.inner = await self.consume(queue, responders.on_delivery, prefetch=prefetch)
        self._responders.add(responders)
        return responders

    async def _send_reply(self, delivery: Delivery, reply: Event) -> None:
        assert isinstance(delivery, _MemoryDelivery)
        if delivery.reply_to and delivery.correlation_id:
            self._broker_reply(delivery.reply_to, delivery.correlation_id, encode(reply).encode())
