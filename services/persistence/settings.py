"""Settings of the persistence worker and history service (``CHASE_PERSISTENCE_*`` variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chase.config import CommonSettings, shared
from chase.schemas import MAX_PAGE
from chase.store.tables import ROOM_NAME_MAX, ROOM_TOPIC_MAX


class PersistenceSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="CHASE_PERSISTENCE_", extra="ignore", populate_by_name=True)

    # The shared setting, with a shorter default here: the broker drops a hung worker between
    # two and three heartbeats after its last word, and only then hands the queue to the
    # standby; at 2 s that is 4-6 s, within the 10 s takeover promised (docs/guarantees.md).
    amqp_heartbeat_seconds: int = Field(
        validation_alias=shared("amqp_heartbeat_seconds"),
        default=2,
        ge=1,
        le=60,
        description="RabbitMQ heartbeat timeout of the persistence worker (the other services: 3): the broker "
        "drops a worker silent for two to three times this long, which hands the queue to the standby",
    )
    batch_size: int = Field(200, ge=1, le=5000, description="Most submitted messages stored per transaction")
    # Short on purpose: under load batches fill while the previous one commits, so a long wait
    # only adds latency (docs/benchmarks.md: 0.02 s made an idle message take 30 ms, 0.002 s 10).
    batch_wait_seconds: float = Field(
        0.002, ge=0, description="How long a partial batch waits for more messages before it is stored"
    )
    lease_seconds: float = Field(
        3.0,
        gt=0,
        description="How long the writer lease outlives the last batch that renewed it: a worker that hangs "
        "longer is replaced by the standby, and its late commit is refused; the database also ends a "
        "transaction the worker leaves idle this long (rounded up to whole seconds)",
    )
    store_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="A batch not stored within this long counts as a store outage (gateways are told, "
        "sends are refused with 'unavailable') and is retried",
    )
    fault_kill_after_commits: int = Field(
        0,
        ge=0,
        description="Fault tests only: SIGKILL this worker right after this many COMMITs, before it "
        "publishes or acks; 0: off",
    )
    history_page_max: int = Field(MAX_PAGE, ge=1, le=MAX_PAGE, description="Largest history or sync page")
    room_name_max_chars: int = Field(
        64, ge=1, le=ROOM_NAME_MAX, description="Longest group room name, in characters"
    )
    room_topic_max_chars: int = Field(
        300, ge=0, le=ROOM_TOPIC_MAX, description="Longest group room topic, in characters"
    )
    room_max_members: int = Field(
        1000, ge=2, le=1_000_000, description="Most members one group room may have"
    )
