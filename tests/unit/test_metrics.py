"""The metrics move for real events: gateway connections, the persistence worker, the consumer
base class; the auth app serves none of it (no network: in-process bus, ASGI transport).

The registry is process-global, so every test reads a value before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from sqlalchemy.exc import OperationalError

from chase import metrics, routing
from chase.bus.consumer import Consumer
from chase.bus.memory import MemoryBus
from chase.bus.port import QueueSpec
from chase.clock import FakeClock
from chase.schemas import (
    ChatMessage,
    ErrorFrame,
    Event,
    Limits,
    MessageFrame,
    MessageSubmitted,
    SessionRevoked,
    UserRef,
)
from chase.store.engine import create_engine
from services.auth.app import create_app
from services.auth.settings import AuthSettings
from services.gateway.fanout import Connection
from services.gateway.server import frame_kind
from services.gateway.session import ConnectionSession
from services.persistence.errors import RejectCode
from services.persistence.store import Rejected, Stored, StoreResult
from services.persistence.worker import PersistenceWorker
from tests.helpers import wait_until

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALICE = UserRef(id=1, username="alice")
LIMITS = Limits(max_body_chars=100, max_frame_bytes=1000, rate_per_second=10, rate_burst=10)
#: Label names that would make one series per person (or leak a secret into monitoring).
PERSONAL = {"user", "user_id", "username", "session", "session_id", "token"}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_metric_is_named_described_and_has_no_personal_label() -> None:
    defined = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    assert len(defined) >= 15
    for metric in defined:
        [family] = metric.describe()
        assert family.name.startswith("chase_"), family.name
        assert family.documentation, family.name
        assert not set(metric._labelnames) & PERSONAL, family.name  # noqa: SLF001


def session() -> ConnectionSession:
    return ConnectionSession(ALICE, "s-1", LIMITS, FakeClock())


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ('{"type": "send", "client_msg_id": "c1", "body": "hi"}', "send"),
        ('{"type": "history"}', "history"),
        ('{"type": "sync", "after_id": 0}', "sync"),
        ('{"type": "ping"}', "ping"),
        ('{"type": "send", "client_msg_id": "c1", "body": "  "}', "refused"),
        ("not json", "refused"),
        ('{"type": "teleport"}', "refused"),
    ],
)
def test_a_frame_is_labelled_by_the_actions_it_produced(frame: str, kind: str) -> None:
    assert frame_kind(session().receive_text(frame)) == kind


class StuckSink:
    """A client that never reads: nothing leaves the outbox."""

    def __init__(self) -> None:
        self.closed: tuple[int, str] | None = None

    def write(self, frames: list[bytes]) -> None:  # pragma: no cover - the writer is never started
        raise AssertionError("not started")

    def backlog(self) -> int:
        return 0

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_frames_queued_for_a_client_are_counted_and_an_overflow_drops_it() -> None:
    message = ChatMessage(id=1, sender=ALICE, recipient_id=None, body="hi", created_at=NOW, client_msg_id="c1")
    fanned, errors, dropped = (
        value("chase_gateway_messages_fanned_out_total"),
        value("chase_gateway_errors_sent_total", code="body_empty"),
        value("chase_gateway_slow_clients_dropped_total"),
    )
    sink = StuckSink()
    conn = Connection(session(), sink, outbox_size=2)  # not started: the outbox only fills
    conn.deliver(MessageFrame(message=message))
    conn.deliver(ErrorFrame(code="body_empty", message="message body is empty"))
    conn.deliver(MessageFrame(message=message))  # the outbox is full
    await conn.finish()
    assert sink.closed is not None and sink.closed[0] == 4008
    assert value("chase_gateway_messages_fanned_out_total") == fanned + 1
    assert value("chase_gateway_errors_sent_total", code="body_empty") == errors + 1
    assert value("chase_gateway_slow_clients_dropped_total") == dropped + 1


@pytest.fixture
async def bus():
    bus = MemoryBus("unit")
    await bus.start()
    yield bus
    await bus.close()


def submitted(cmid: str, to: int | None = None) -> MessageSubmitted:
    return MessageSubmitted(sender=ALICE, recipient_id=to, body="hi", client_msg_id=cmid, submitted_at=NOW)


class OnceDownStore:
    """Unreachable on the first call, then stores; recipient 99 does not exist."""

    def __init__(self) -> None:
        self.rows: dict[str, ChatMessage] = {}
        self.calls = 0

    async def store_batch(self, batch: Sequence[MessageSubmitted]) -> list[StoreResult]:
        self.calls += 1
        if self.calls == 1:
            raise OperationalError("INSERT ...", {}, Exception(2003, "cannot connect"))
        results: list[StoreResult] = []
        for item in batch:
            if item.recipient_id == 99:
                results.append(Rejected(ALICE.id, item.client_msg_id, RejectCode.RECIPIENT_UNKNOWN, "no such user"))
                continue
            duplicate = item.client_msg_id in self.rows
            if not duplicate:
                self.rows[item.client_msg_id] = ChatMessage(
                    id=len(self.rows) + 1, sender=ALICE, recipient_id=item.recipient_id, body=item.body,
                    created_at=NOW, client_msg_id=item.client_msg_id,
                )
            results.append(Stored(self.rows[item.client_msg_id], duplicate=duplicate))
        return results


async def test_the_worker_counts_batches_results_and_outages(bus: MemoryBus) -> None:
    names = (
        "chase_persistence_batches_total",
        "chase_persistence_batch_messages_sum",
        "chase_persistence_store_batch_seconds_count",
        "chase_persistence_messages_stored_total",
        "chase_persistence_messages_duplicate_total",
        "chase_persistence_store_outages_total",
    )
    before = {name: value(name) for name in names}
    rejected = value("chase_persistence_messages_rejected_total", code="recipient_unknown")
    worker = PersistenceWorker(bus, OnceDownStore(), max_batch=10, max_wait=0.0, retry_delay=0.0, clock=FakeClock())
    await worker.start()
    try:
        for event in (submitted("a"), submitted("a"), submitted("b", to=99)):
            await bus.publish(routing.MESSAGE_SUBMITTED, event)
        await wait_until(lambda: value("chase_persistence_batch_messages_sum") == before[names[1]] + 3)
    finally:
        await worker.stop()
    delta = {name: value(name) - before[name] for name in names}
    assert delta["chase_persistence_batches_total"] >= 1
    assert delta["chase_persistence_store_batch_seconds_count"] == delta["chase_persistence_batches_total"]
    assert delta["chase_persistence_messages_stored_total"] == 1
    assert delta["chase_persistence_messages_duplicate_total"] == 1
    assert value("chase_persistence_messages_rejected_total", code="recipient_unknown") == rejected + 1
    assert delta["chase_persistence_store_outages_total"] == 1


class AlwaysFails(Consumer):
    async def consume(self, event: Event) -> None:
        raise ValueError("poison")


async def test_a_dead_lettered_event_is_counted_by_queue(bus: MemoryBus) -> None:
    queue = QueueSpec("metrics-work", bindings=("metrics-work",), delivery_limit=1)
    before = value("chase_bus_dead_lettered_total", queue="metrics-work")
    consumer = AlwaysFails(bus, queue, retry_delay=0.0)
    await consumer.start()
    try:
        await bus.publish("metrics-work", SessionRevoked(user_id=1, session_id="s"))
        await wait_until(lambda: value("chase_bus_dead_lettered_total", queue="metrics-work") == before + 1)
    finally:
        await consumer.stop()


async def test_the_auth_app_never_serves_metrics_on_its_public_port(tmp_path: Path) -> None:
    # Neither /metrics nor /openapi.json touch the database: the engine never connects.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    app = create_app(AuthSettings(bcrypt_rounds=4), engine=engine)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://auth.test") as http:
            response = await http.get("/metrics")
            schema = (await http.get("/openapi.json")).json()
    finally:
        await engine.dispose()
    assert "/metrics" not in schema["paths"]
    assert response.status_code == 404
