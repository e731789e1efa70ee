"""A database link cut while the persistence worker holds a batch, on the real driver.

The services run on uvloop (``chase.cli``), and so does this test (``conftest.py``). There, a pooled MariaDB connection whose link was
cut fails its next use with the driver's own ``RuntimeError`` (``unable to perform operation
on <TCPTransport closed=True>; the handler is closed``), not with a MySQL error code. Taken
for the batch's own failure, that split the batch and sent its first message back to the
queue while the sender's later ones were stored: the reordering the fault suite once saw in
``cut-database``. The worker now asks the database (``PersistenceWorker.is_outage``): it does
not answer, so the batch is retried whole, and stored in the order sent.

The engine here is SQLAlchemy's stock one with ``pool_pre_ping``, whose ping passes that error
on (it is how the fault suite met it). asyncmy, the other driver ChaSe runs on, names the cut
itself (MySQL error 2006 or 2013; SQLAlchemy's ping then replaces the connection, and the new
one cannot connect: 2003), a transient failure: the batch must be retried whole too. ChaSe's own engine now replaces such connections at
checkout (``tests/integration/on_uvloop/test_store_pool.py``), but an unnamed error can still
come from a connection that dies inside a transaction; the worker must not split for it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from chase import routing
from chase.bus.memory import MemoryBus
from chase.bus.port import Delivery, QueueSpec
from chase.clock import SystemClock
from chase.schemas import MessagesStored, MessageStored, MessageSubmitted
from chase.store import migrate
from chase.store.engine import create_engine
from services.persistence.store import MessageStore
from services.persistence.worker import PERSISTENCE_QUEUE_SPEC, PersistenceWorker
from tests.faults import TcpForwarder
from tests.helpers import make_users, wait_until

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
#: Pooled connections open through the link when it is cut: each fails one attempt.
STALE = 4


class Judging(PersistenceWorker):
    """The real worker; it keeps what it was asked to judge, so the test can see the driver's
    error reached it."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.judged: list[Exception] = []
        self.failures: list[Exception] = []

    def is_transient(self, exc: Exception) -> bool:
        self.failures.append(exc)
        return super().is_transient(exc)

    async def is_outage(self, exc: Exception) -> bool:
        self.judged.append(exc)
        return await super().is_outage(exc)


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
async def test_a_link_cut_under_a_batch_keeps_the_senders_order(mariadb_url: str, driver: str):
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    target = sa.engine.make_url(mariadb_url).set(drivername=f"mysql+{driver}")
    setup = create_engine(mariadb_url)
    try:
        await migrate.upgrade(setup)
        (alice,) = await make_users(setup, "alice")
    finally:
        await setup.dispose()
    async with TcpForwarder(target.host or "127.0.0.1", target.port or 3306) as link:
        engine = create_async_engine(target.set(port=link.port), pool_pre_ping=True)
        bus = MemoryBus("cut")
        await bus.start()
        stored: list[str] = []

        async def observe(delivery: Delivery) -> None:
            event = delivery.event
            for item in event.items if isinstance(event, MessagesStored) else [event]:
                if isinstance(item, MessageStored):
                    stored.append(item.message.client_msg_id)
            await delivery.ack()

        await bus.consume(QueueSpec("obs", bindings=("message.stored.#",), durable=False), observe)
        store = MessageStore(engine, SystemClock())
        worker = Judging(bus, store, probe=store.probe, max_batch=10, max_wait=0.05, retry_delay=0.05)
        try:
            # Connections in the pool, open through the link; then the link is cut under them.
            async def hold(release: asyncio.Event) -> None:
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
                    await release.wait()

            release = asyncio.Event()
            holders = [asyncio.create_task(hold(release)) for _ in range(STALE)]
            await wait_until(lambda: link.accepted >= STALE)
            release.set()
            await asyncio.gather(*holders)
            await link.cut()
            await asyncio.sleep(0.2)  # the resets reach the pooled connections
            # The queue exists first, so the four messages reach the worker as one batch.
            await (await bus.consume(PERSISTENCE_QUEUE_SPEC, lambda d: asyncio.sleep(0))).cancel()
            sent = [f"a{i}" for i in range(4)]
            for cmid in sent:
                await bus.publish(routing.MESSAGE_SUBMITTED, MessageSubmitted(
                    sender=alice, recipient_id=None, body=cmid, client_msg_id=cmid, submitted_at=NOW))
            await worker.start()
            if driver == "aiomysql":
                await wait_until(lambda: any(isinstance(e, RuntimeError) for e in worker.judged), timeout=20)
            else:
                await wait_until(lambda: any(_named_cut(e) for e in worker.failures), timeout=20)
            await link.restore()
            await wait_until(lambda: len(stored) == len(sent), timeout=30)
        finally:
            await worker.stop()
            await bus.close()
            await engine.dispose()
    assert stored == sent


def _named_cut(exc: Exception) -> bool:
    """A MySQL error saying the connection is gone or cannot be made, as asyncmy reports a cut."""
    args = getattr(getattr(exc, "orig", None), "args", ())
    return bool(args) and args[0] in (2003, 2006, 2013)
