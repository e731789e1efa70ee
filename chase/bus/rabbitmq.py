"""The RabbitMQ bus adapter (aio-pika). The only module in ChaSe that imports aio-pika.

Topology, all names prefixed with the namespace (``chase`` in production)::

    <ns>.events        durable topic exchange every event is published to
    <ns>.dead-letter   durable fanout exchange + quorum queue: what durable queues reject
    <ns>.<queue>       one per QueueSpec (see _queue_arguments for how a spec maps)

Publishing uses one channel with publisher confirms: :meth:`RabbitBus.publish` returns after
the broker's ack and raises :class:`BusUnavailable` otherwise. Each subscription has a channel
of its own with ``basic.qos(prefetch)``, so closing it returns exactly its unacked deliveries.
Requests use direct reply-to (``amq.rabbitmq.reply-to``) on the publishing channel.

Broker connection loss: the connection is robust. While it is down every operation raises
:class:`BusUnavailable` at once (a robust channel would otherwise wait for the reconnect with no
bound); one that does not complete in time (the reconnect is under way) raises it after
``publish_timeout``. Once reconnected, aio-pika re-declares the exchanges, the queues (exclusive
ones included) with their bindings, runtime ones too, and the consumers; unacked deliveries come
back redelivered, and the direct reply-to consumer is restarted by ``_consume_replies``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelInvalidStateError, DeliveryError, PublishError
from aiormq.abc import DeliveredMessage
from pydantic import ValidationError
from yarl import URL

from chase.bus.memory import DEAD_LETTER_QUEUE
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
from chase.logging import get_logger
from chase.metrics import BUS_PUBLISHER_RENEWALS
from chase.schemas import Event, decode_event, encode

log = get_logger(__name__)

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
_BROKER_ERRORS = (*CONNECTION_EXCEPTIONS, TimeoutError)

_T = TypeVar("_T")


def redact(url: str) -> str:
    """``url`` with its password replaced, safe to log or show."""
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


#: A subscription's deliveries not settled yet, in the order received, keyed by the broker
#: channel they came on (delivery tags start again on a new one) and their tag.
_Unsettled = dict[tuple[object, int], "_RabbitDelivery"]


class _RabbitDelivery(Delivery):
    def __init__(self, message: AbstractIncomingMessage, event: Event, unsettled: _Unsettled) -> None:
        self.event = event
        self.routing_key = message.routing_key or ""
        self.redelivered = bool(message.redelivered)
        count = (message.headers or {}).get("x-delivery-count", 0)
        self.delivery_count = count if isinstance(count, int) else 0
        self.message = message
        self.delivery_tag = message.delivery_tag or 0
        self._settled = False
        self._unsettled = unsettled
        try:
            self.channel: object = message.channel
        except ChannelInvalidStateError:
            self.channel = None  # already gone: never acked by anything
        else:
            unsettled[(self.channel, self.delivery_tag)] = self

    @property
    def settled(self) -> bool:
        return self._settled

    def _mark_settled(self) -> None:
        self._settled = True
        self._unsettled.pop((self.channel, self.delivery_tag), None)

    def acks_all(self, others: Sequence[_RabbitDelivery]) -> bool:
        """True when a ``multiple`` ack of this delivery would settle exactly ``others`` (this
        one among them): nothing else of its channel up to its tag is still unsettled."""
        members = {id(d) for d in others}
        gone = []
        for (channel, tag), delivery in self._unsettled.items():
            if channel is not self.channel:
                if getattr(channel, "is_closed", False):
                    gone.append((channel, tag))  # abandoned with its channel: forget it
                continue
            if tag > self.delivery_tag:
                break
            if id(delivery) not in members:
                return False
        for key in gone:
            del self._unsettled[key]
        return True

    async def ack_with(self, others: Sequence[_RabbitDelivery]) -> None:
        """Ack ``others`` (see :meth:`acks_all`) with one ``basic.ack multiple`` on this one."""
        for delivery in others:
            if delivery is not self:
                delivery._mark_settled()
        await self._settle(self.message.ack(multiple=True))

    @property
    def stale(self) -> bool:
        try:
            self.message.channel  # noqa: B018 - raises once the delivery's channel is closed
        except ChannelInvalidStateError:
            return True
        return False

    async def ack(self) -> None:
        await self._settle(self.message.ack())

    async def reject(self, *, requeue: bool) -> None:
        await self._settle(self.message.reject(requeue=requeue))

    async def _settle(self, action: Any) -> None:
        if self._settled:
            action.close()
            return
        self._mark_settled()
        try:
            await action
        except _BROKER_ERRORS as exc:
            # The channel is gone: the broker has already put the message back, and it will
            # be delivered again. Nothing to undo here.
            log.warning("bus.settle_failed", routing_key=self.routing_key, error=repr(exc))


class _RabbitSubscription(Subscription):
    """One consumer on its own channel; hands deliveries to the handler one at a time."""

    def __init__(self, bus: RabbitBus, channel: AbstractChannel, queue: AbstractQueue, handler: Handler) -> None:
        self.bus = bus
        self.channel = channel
        self.queue = queue
        self.handler = handler
        self.tag: str | None = None
        self.inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"bus:{queue.name}")
        self.cancelled = False
        self.unsettled: _Unsettled = {}

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        # aio-pika runs this callback in a task per delivery, created in delivery order;
        # queueing without awaiting keeps that order for the handler.
        self.inbox.put_nowait(message)

    async def _run(self) -> None:
        while True:
            message = await self.inbox.get()
            await self._handle(message)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            event = decode_event(message.body)
        except ValidationError as exc:
            log.error("bus.malformed_event", queue=self.queue.name, routing_key=message.routing_key,
                      error=str(exc).splitlines()[0])
            try:
                await message.reject(requeue=False)
            except _BROKER_ERRORS as err:
                log.warning("bus.settle_failed", routing_key=message.routing_key, error=repr(err))
            return
        delivery = _RabbitDelivery(message, event, self.unsettled)
        try:
            await self.handler(delivery)
        except Exception:
            log.exception("bus.handler_failed", queue=self.queue.name, routing_key=message.routing_key)
            await delivery.reject(requeue=True)

    async def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self.bus._subscriptions.discard(self)
        if self.task is not asyncio.current_task():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        # Bounded: on a broker that does not answer, a stop must not wait for aio-pika's own RPC
        # timeout (a minute); the connection's close that follows ends the channel anyway.
        try:
            if self.tag is not None and not self.channel.is_closed:
                await self.bus._bounded(lambda: self.queue.cancel(self.tag))
            # Closing the channel is what returns its unacked deliveries to the queue.
            await self.bus._bounded(self.channel.close)
        except _BROKER_ERRORS as exc:
            log.warning("bus.cancel_failed", queue=self.queue.name, error=repr(exc))


class RabbitBus(Bus):
    """The bus on a RabbitMQ broker; ``await start()`` before use, ``await close()`` after."""

    def __init__(self, url: str, namespace: str = "chase", *, connect_timeout: float = 10,
                 publish_timeout: float = 5.0, heartbeat: int = 3, reconnect_interval: float = 1.0) -> None:
        """``heartbeat`` (seconds) is how fast the broker notices this process hung or its link
        froze (about that long), which is what hands a single-active-consumer queue to the
        standby; ``reconnect_interval`` is the pause between reconnection attempts."""
        self.url = url
        self.heartbeat = heartbeat
        self.reconnect_interval = reconnect_interval
        self._reconnect_listeners: list[Callable[[], Awaitable[None]]] = []
        self._listener_tasks: set[asyncio.Task[None]] = set()
        self.namespace = namespace
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.exchange_name = f"{namespace}.events"
        self.dead_letter_exchange = f"{namespace}.{DEAD_LETTER_QUEUE}"
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._queues: dict[str, AbstractQueue] = {}
        self._subscriptions: set[_RabbitSubscription] = set()
        self._pending: dict[str, asyncio.Future[Event]] = {}
        self._closed = False
        self._renewal: asyncio.Task[None] | None = None
        self._renewed_at = float("-inf")
        #: How many times a stalled publishing channel was replaced (also a metric).
        self.publisher_renewals = 0
        #: Full names of every queue this bus declared (tests delete them afterwards).
        self.declared_queues: set[str] = set()

    async def start(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(
                self.url,
                timeout=self.connect_timeout,
                heartbeat=self.heartbeat,
                reconnect_interval=self.reconnect_interval,
            )
            self._connection.reconnect_callbacks.add(self._reconnected)
            self._channel, self._exchange = await self._open_publisher(self._connection)
        except _BROKER_ERRORS as exc:
            await self._abort()
            raise BusUnavailable(
                f"cannot use the broker at CHASE_AMQP_URL={redact(self.url)}: {exc or type(exc).__name__}"
            ) from None

    async def _open_publisher(
        self, connection: AbstractRobustConnection
    ) -> tuple[AbstractChannel, aio_pika.abc.AbstractExchange]:
        """A publishing channel (publisher confirms) with the exchanges and the dead-letter
        queue declared on it, which the robust connection declares again on every reconnect,
        and the direct reply-to consumer, restarted on every reopen."""
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        dlx = await channel.declare_exchange(self.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True)
        dead = await self._declare(channel, QueueSpec(DEAD_LETTER_QUEUE))
        await dead.bind(dlx, routing_key="")
        await self._consume_replies(channel)
        channel.reopen_callbacks.add(self._consume_replies)
        return channel, exchange

    def _publish_stalled(self, channel: AbstractChannel | None) -> None:
        """A publish on ``channel`` was refused (nack) or went unconfirmed for
        ``publish_timeout`` while the connection is up: publish on a new channel from now on.

        A channel can go bad for good while its connection is fine. Seen in the three-node
        cluster test on RabbitMQ 3.10: after the node leading the persistence queue stopped, a
        gateway connected to a surviving node had every later publish to that queue nacked,
        for minutes, while a new channel's publishes were taken (RabbitMQ before 4.2 can leave
        a channel's quorum-queue client stuck after a leader change; it can also leave
        publishes waiting). A new channel starts afresh. At most one renewal per
        ``publish_timeout``: one bad spell makes many publishes fail.
        """
        now = asyncio.get_running_loop().time()
        if (channel is None or channel is not self._channel or self._renewal is not None
                or now - self._renewed_at < self.publish_timeout):
            return
        self._renewed_at = now
        self._renewal = asyncio.get_running_loop().create_task(self._renew_publisher(channel))
        self._renewal.add_done_callback(lambda _: setattr(self, "_renewal", None))

    async def _renew_publisher(self, stalled: AbstractChannel) -> None:
        connection = self._connection
        if self._closed or connection is None or not connection.connected.is_set():
            return  # the reconnect that is under way opens the channels again
        try:
            channel, exchange = await self._bounded(lambda: self._open_publisher(connection), self.connect_timeout)
        except _BROKER_ERRORS as exc:
            log.warning("bus.publisher_renewal_failed", error=repr(exc))  # the next stalled publish tries again
            return
        if self._closed or stalled is not self._channel:
            await self._close_quietly(channel)
            return
        self._channel, self._exchange = channel, exchange
        self.publisher_renewals += 1
        BUS_PUBLISHER_RENEWALS.inc()
        log.warning("bus.publisher_renewed", reason="a publish went unconfirmed; publishing on a new channel")
        stalled.reopen_callbacks.discard(self._consume_replies)
        await self._close_quietly(stalled)

    async def _close_quietly(self, channel: AbstractChannel) -> None:
        try:
            await self._bounded(channel.close)
        except _BROKER_ERRORS as exc:
            log.warning("bus.channel_close_failed", error=repr(exc))

    async def _abort(self) -> None:
        if self._connection is not None:
            connection = self._connection
            try:
                await self._bounded(connection.close)
            except _BROKER_ERRORS:
                pass
        self._connection = self._channel = self._exchange = None

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._reconnect_listeners.append(callback)

    async def _reconnected(self, *_: object) -> None:
        # aio-pika calls this after every channel was restored: queues declared and bound
        # again, consumers consuming again. The listeners run in a task of their own, so that
        # what they do on the bus never waits for the reconnection that is calling them.
        log.warning("bus.reconnected", namespace=self.namespace)
        task = asyncio.get_running_loop().create_task(self._tell_reconnected())
        self._listener_tasks.add(task)
        task.add_done_callback(self._listener_tasks.discard)

    async def _tell_reconnected(self) -> None:
        for callback in list(self._reconnect_listeners):
            try:
                await callback()
            except Exception:  # noqa: BLE001 - one listener must not stop the others
                log.exception("bus.reconnect_listener_failed")

    async def _consume_replies(self, channel: AbstractChannel, *_: object) -> None:
        # Direct reply-to: the pseudo-queue must be consumed, no-ack, on the channel that
        # publishes the requests; after a reconnect it is consumed again.
        underlay = await channel.get_underlay_channel()
        await underlay.basic_consume(DIRECT_REPLY_TO, self._on_reply, no_ack=True)

    async def _on_reply(self, message: DeliveredMessage) -> None:
        correlation_id = message.header.properties.correlation_id
        future = self._pending.get(correlation_id or "")
        if future is None or future.done():
            return
        try:
            future.set_result(decode_event(message.body))
        except ValidationError as exc:
            log.error("bus.malformed_reply", error=str(exc).splitlines()[0])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._renewal is not None:
            self._renewal.cancel()
            await asyncio.gather(self._renewal, return_exceptions=True)
        for sub in list(self._subscriptions):
            await sub.cancel()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BusUnavailable("the bus was closed while waiting for a reply"))
        await self._abort()

    def _queue_arguments(self, spec: QueueSpec) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if spec.durable and not spec.exclusive:
            args["x-queue-type"] = "quorum"
            # The dead-letter queue itself must not dead-letter into itself.
            if spec.name != DEAD_LETTER_QUEUE:
                args["x-dead-letter-exchange"] = self.dead_letter_exchange
        if spec.single_active_consumer:
            args["x-single-active-consumer"] = True
        if spec.delivery_limit is not None and spec.durable and not spec.exclusive:
            args["x-delivery-limit"] = spec.delivery_limit
        if spec.max_length is not None:
            args["x-max-length"] = spec.max_length
        if spec.max_length_bytes is not None:
            args["x-max-length-bytes"] = spec.max_length_bytes
        if spec.max_length is not None or spec.max_length_bytes is not None:
            args["x-overflow"] = "drop-head"
        return args

    async def _declare(self, channel: AbstractChannel, spec: QueueSpec) -> AbstractQueue:
        full = f"{self.namespace}.{spec.name}"
        quorum = spec.durable and not spec.exclusive
        queue = await channel.declare_queue(
            full,
            durable=quorum,
            exclusive=spec.exclusive,
            auto_delete=spec.exclusive,
            arguments=self._queue_arguments(spec),
        )
        for binding in spec.bindings:
            await queue.bind(self.exchange_name, routing_key=binding)
        self.declared_queues.add(full)
        return queue

    def is_ready(self) -> bool:
        try:
            self._require()
        except BusUnavailable:
            return False
        return True

    def _require(self) -> AbstractRobustConnection:
        if self._closed or self._connection is None or self._exchange is None:
            raise BusUnavailable("the RabbitMQ bus is not started or already closed")
        if not self._connection.connected.is_set():
            raise BusUnavailable("the broker connection is down (reconnecting)")
        return self._connection

    async def _bounded(self, operation: Callable[[], Awaitable[_T]], timeout: float | None = None) -> _T:
        """Run ``operation`` for at most ``timeout`` (default ``publish_timeout``) seconds: on a
        robust channel it would wait for a reconnect as long as that takes.

        ``asyncio.timeout``, not ``wait_for``: on Python 3.11 a ``wait_for`` whose operation
        finishes just as the caller is cancelled swallows the cancel, and a task being stopped
        (a heartbeat loop) runs on for ever."""
        async with asyncio.timeout(self.publish_timeout if timeout is None else timeout):
            return await operation()

    def _message(self, event: Event, **properties: Any) -> aio_pika.Message:
        return aio_pika.Message(
            encode(event).encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=uuid.uuid4().hex,
            **properties,
        )

    async def publish(self, routing_key: str, event: Event) -> None:
        self._require()
        channel, exchange = self._channel, self._exchange
        assert exchange is not None
        try:
            await self._bounded(lambda: exchange.publish(self._message(event), routing_key, mandatory=False))
        except TimeoutError:
            self._publish_stalled(channel)
            raise BusUnavailable(f"the broker did not confirm {routing_key} in {self.publish_timeout} s") from None
        except DeliveryError as exc:
            # A nack: the queue could not take it. Usually a moment (a quorum queue electing a
            # leader); but a channel RabbitMQ left stuck nacks every publish for good.
            self._publish_stalled(channel)
            raise BusUnavailable(f"the broker refused {routing_key}: {exc!r}") from None
        except _BROKER_ERRORS as exc:
            raise BusUnavailable(f"the broker did not confirm {routing_key}: {exc!r}") from None

    async def publish_many(self, items: Sequence[tuple[str, Event]]) -> None:
        # The publishes leave in call order (the tasks start in order and aio-pika writes each
        # one's frames under the channel's FIFO lock); only the confirms are awaited together,
        # so a batch costs about one round trip instead of one per event.
        results = await asyncio.gather(*(self.publish(key, event) for key, event in items), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def ack_all(self, deliveries: Sequence[Delivery]) -> None:
        # One basic.ack multiple=True per channel, on the highest delivery tag: it settles every
        # unacked delivery of that channel up to it, so it is sent only when those are exactly
        # these (as Bus.ack_all asks of the caller; checked here, because acking one by mistake
        # would drop a message that was never handled). Otherwise each is acked alone. A batch
        # can span two channels when the connection came back in between; a stale delivery's
        # ack only fails and is logged, as always.
        by_channel: dict[int, list[_RabbitDelivery]] = {}
        for delivery in deliveries:
            if not isinstance(delivery, _RabbitDelivery) or delivery.settled or delivery.stale:
                await delivery.ack()
                continue
            by_channel.setdefault(id(delivery.channel), []).append(delivery)
        for group in by_channel.values():
            top = max(group, key=lambda d: d.delivery_tag)
            if top.acks_all(group):
                await top.ack_with(group)
                continue
            for delivery in group:
                await delivery.ack()

    async def _publish_reply(self, reply_to: str, correlation_id: str, reply: Event) -> None:
        self._require()
        assert self._channel is not None
        message = self._message(reply, correlation_id=correlation_id)
        message.delivery_mode = aio_pika.DeliveryMode.NOT_PERSISTENT
        try:
            await self._bounded(lambda: self._channel.default_exchange.publish(message, reply_to, mandatory=False))
        except _BROKER_ERRORS as exc:
            raise BusUnavailable(f"could not send a reply: {exc!r}") from None

    async def consume(self, queue: QueueSpec, handler: Handler, *, prefetch: int = 100) -> Subscription:
        connection = self._require()
        channel: AbstractChannel | None = None
        subscription: _RabbitSubscription | None = None

        async def subscribe() -> _RabbitSubscription:
            nonlocal channel, subscription
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=max(1, prefetch))
            declared = await self._declare(channel, queue)
            subscription = _RabbitSubscription(self, channel, declared, handler)
            subscription.tag = await declared.consume(subscription.on_message)
            return subscription

        try:
            subscription = await self._bounded(subscribe, self.connect_timeout)
        except _BROKER_ERRORS as exc:
            if subscription is not None:
                subscription.task.cancel()
            if channel is not None and not channel.is_closed:
                try:
                    await self._bounded(channel.close)
                except _BROKER_ERRORS:
                    pass
            raise BusUnavailable(f"cannot consume {queue.name}: {exc!r}") from None
        declared = subscription.queue
        self._queues[declared.name] = declared
        self._subscriptions.add(subscription)
        return subscription

    async def _queue(self, queue_name: str) -> AbstractQueue:
        full = f"{self.namespace}.{queue_name}"
        queue = self._queues.get(full)
        if queue is None:
            assert self._channel is not None
            queue = await self._channel.get_queue(full, ensure=False)
        return queue

    async def bind(self, queue_name: str, binding: str) -> None:
        self._require()
        try:
            queue = await self._queue(queue_name)
            await self._bounded(lambda: queue.bind(self.exchange_name, routing_key=binding))
        except _BROKER_ERRORS as exc:
            raise BusUnavailable(f"cannot bind {queue_name} to {binding}: {exc!r}") from None

    async def unbind(self, queue_name: str, binding: str) -> None:
        self._require()
        try:
            queue = await self._queue(queue_name)
            await self._bounded(lambda: queue.unbind(self.exchange_name, routing_key=binding))
        except _BROKER_ERRORS as exc:
            raise BusUnavailable(f"cannot unbind {queue_name} from {binding}: {exc!r}") from None

    async def request(self, routing_key: str, event: Event, *, timeout: float = 5.0) -> Event:
        self._require()
        channel, exchange = self._channel, self._exchange
        assert exchange is not None
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        # Expires with the wait: the broker drops a request nobody waits for any more instead
        # of handing it to the responder (in a storm, answering those made the rest late too).
        message = self._message(event, correlation_id=correlation_id, reply_to=DIRECT_REPLY_TO,
                                expiration=timeout)
        message.delivery_mode = aio_pika.DeliveryMode.NOT_PERSISTENT
        try:
            try:
                # mandatory: an unroutable request comes back at once instead of timing out.
                await self._bounded(lambda: exchange.publish(message, routing_key, mandatory=True), timeout)
            except PublishError:
                raise RequestTimeout(f"no responder is bound for {routing_key}") from None
            except TimeoutError:
                self._publish_stalled(channel)
                raise BusUnavailable(f"the broker did not confirm the request {routing_key}") from None
            except _BROKER_ERRORS as exc:
                raise BusUnavailable(f"could not send the request {routing_key}: {exc!r}") from None
            try:
                async with asyncio.timeout(timeout):
                    return await future
            except TimeoutError:
                raise RequestTimeout(f"no reply to {routing_key} within {timeout}s") from None
        finally:
            self._pending.pop(correlation_id, None)

    async def serve(self, queue: QueueSpec, responder: Responder, *, prefetch: int = 10) -> Subscription:
        responders = Responders(responder, self._send_reply)
        responders.inner = await self.consume(queue, responders.on_delivery, prefetch=prefetch)
        return responders

    async def _send_reply(self, delivery: Delivery, reply: Event) -> None:
        assert isinstance(delivery, _RabbitDelivery)
        reply_to, correlation_id = delivery.message.reply_to, delivery.message.correlation_id
        if reply_to and correlation_id:
            await self._publish_reply(reply_to, correlation_id, reply)
