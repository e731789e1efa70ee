"""The persistence worker with room commands on its queue (in-process bus, in-memory fakes):
commands are applied in order with the messages around them, each answered on its key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from chase import routing
from chase.bus.memory import MemoryBus
from chase.bus.port import Delivery, QueueSpec
from chase.schemas import Event, MessageSubmitted, RoomCommand, RoomCommandResult, UserRef
from services.persistence.worker import PersistenceWorker
from tests.helpers import wait_until
from tests.unit.test_persistence_worker import FakeStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALICE = UserRef(id=1, username="alice")


class Log:
    """Records the order in which the worker stored messages and applied commands."""

    def __init__(self) -> None:
        self.order: list[str] = []


class LoggingStore(FakeStore):
    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log = log

    async def store_batch(self, batch):  # noqa: ANN001, ANN201
        self.log.order.extend(item.client_msg_id for item in batch)
        return await super().store_batch(batch)


class FakeRooms:
    def __init__(self, log: Log) -> None:
        self.log = log

    async def outcome(self, command: RoomCommand) -> list[tuple[str, Event]]:
        self.log.order.append(command.command_id)
        result = RoomCommandResult(command_id=command.command_id, actor_id=command.actor.id,
                                   code="room_not_found", reason="no")
        return [(routing.room_result(command.actor.id), result)]


async def test_commands_are_applied_in_order_with_messages() -> None:
    bus = MemoryBus("unit-rooms")
    await bus.start()
    log = Log()
    answers: list[Delivery] = []

    async def observe(delivery: Delivery) -> None:
        answers.append(delivery)
        await delivery.ack()

    await bus.consume(QueueSpec("obs", bindings=("user.#",), durable=False), observe)
    worker = PersistenceWorker(bus, LoggingStore(log), max_batch=10, max_wait=0.05, retry_delay=0.0,
                               rooms=FakeRooms(log))
    try:
        events: list[tuple[str, Event]] = [
            (routing.MESSAGE_SUBMITTED, MessageSubmitted(sender=ALICE, recipient_id=None, body="1",
                                                         client_msg_id="m1", submitted_at=NOW)),
            (routing.ROOM_COMMAND, RoomCommand(command_id="c1", actor=ALICE, op="join", room_id=5,
                                               submitted_at=NOW)),
            (routing.MESSAGE_SUBMITTED, MessageSubmitted(sender=ALICE, recipient_id=None, room_id=5, body="2",
                                                         client_msg_id="m2", submitted_at=NOW)),
        ]
        await worker.start()
        await bus.publish_many(events)
        await wait_until(lambda: len(log.order) == 3 and len(answers) == 1)
        await asyncio.sleep(0)
    finally:
        await worker.stop()
        await bus.close()
    assert log.order == ["m1", "c1", "m2"]
    assert answers[0].routing_key == routing.room_result(ALICE.id)
