"""Composition root of the persistence service: the worker and the history responder.

``run`` is what the embedded ``chase serve`` calls with the engine and bus it shares with the
other services; ``main`` is the stand-alone ``chase persistence`` entry point, which builds its
own from the settings.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from chase.bus.port import Bus, Subscription
from chase.clock import Clock, SystemClock
from chase.logging import get_logger
from services.persistence.queries import HISTORY_QUEUE_SPEC, HistoryResponder
from services.persistence.room_commands import RoomCommands
from services.persistence.rooms import RoomLimits, RoomReader
from services.persistence.settings import PersistenceSettings
from services.persistence.store import MessageStore
from services.persistence.worker import PersistenceWorker

log = get_logger(__name__)


class PersistenceService:
    """The worker and the responder over one store; ``start()``, then ``stop()`` when done."""

    def __init__(self, settings: PersistenceSettings, *, engine: AsyncEngine, bus: Bus, clock: Clock | None = None):
        clock = clock or SystemClock()
        self.store = MessageStore(
            engine,
            clock,
            max_body_chars=settings.max_body_chars,
            page_max=settings.history_page_max,
            lease_seconds=settings.lease_seconds,
        )
        self._bus = bus
        self.rooms = RoomCommands(
            self.store,
            RoomLimits(
                name_max=settings.room_name_max_chars,
                topic_max=settings.room_topic_max_chars,
                max_members=settings.room_max_members,
            ),
        )
        self._room_reader = RoomReader(engine)
        self._worker = PersistenceWorker(
            bus,
            self.store,
            max_batch=settings.batch_size,
            max_wait=settings.batch_wait_seconds,
            probe=self.store.probe,
            clock=clock,
            store_timeout=settings.store_timeout_seconds,
            kill_after_commits=settings.fault_kill_after_commits,
            rooms=self.rooms,
        )
        self._responder: Subscription | None = None

    async def start(self) -> None:
        """Start consuming; the bus must be started and the schema migrated."""
        await self._worker.start()
        self._responder = await self._bus.serve(HISTORY_QUEUE_SPEC, HistoryResponder(self.store, self._room_reader))
        log.info("persistence_started")

    async def stop(self) -> None:
        """Stop consuming; deliveries not yet acknowledged go back to their queues."""
        if self._responder is not None:
            await self._responder.cancel()
            self._responder = None
        await self._worker.stop()
        log.info("persistence_stopped")


async def run(settings: PersistenceSettings, *, engine: AsyncEngine, bus: Bus, clock: Clock | None = None) -> None:
    """Serve until cancelled, then stop cleanly. The caller owns (starts, closes) engine and bus."""
    service = PersistenceService(settings, engine=engine, bus=bus, clock=clock)
    await service.start()
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()
