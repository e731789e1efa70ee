"""Settings of one gateway: ``CHASE_GATEWAY_*`` environment variables (shared ones ``CHASE_*``)."""

from __future__ import annotations

import secrets

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from chase.config import CommonSettings
from chase.schemas import Limits


def _random_gateway_id() -> str:
    return f"gw-{secrets.token_hex(4)}"


class GatewaySettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="CHASE_GATEWAY_", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", description="Address the WebSocket server listens on")
    port: int = Field(8765, ge=0, le=65535, description="WebSocket (wss://) port; 0 picks a free one")
    auth_url: str = Field(
        "https://127.0.0.1:8443",
        description="Base URL of the auth service; under `chase serve`, unset means the auth service "
        "of the same process, called in-process",
    )
    # One word of a routing key: it names this gateway's queue and presence events.
    gateway_id: str = Field(
        default_factory=_random_gateway_id,
        validation_alias=AliasChoices("CHASE_GATEWAY_ID"),
        pattern=r"^[a-z0-9][a-z0-9-]{0,39}$",
        description="This gateway's name on the bus (one word); default gw-<random>",
    )
    max_frame_bytes: int = Field(65536, ge=256, description="Largest client frame, in bytes")
    rate_per_second: float = Field(20.0, gt=0, description="Frames a connection may send per second")
    rate_burst: int = Field(40, ge=1, description="Frames a connection may send at once")
    outbox_size: int = Field(1000, ge=1, description="Frames queued for a client before it is dropped")
    outbox_max_bytes: int = Field(
        4 * 1024 * 1024, ge=65_536, description="Characters of frames queued for a client before it is dropped (4008)"
    )
    max_connections_per_user: int = Field(
        20, ge=1, description="WebSocket connections one user may have open on this gateway (more: close 4429)"
    )
    handshake_timeout_seconds: float = Field(
        10.0, gt=0, description="How long the TLS and WebSocket opening handshakes may take before the socket is dropped"
    )
    heartbeat_seconds: float = Field(5.0, gt=0, description="How often presence heartbeats go out")
    presence_window_seconds: float = Field(
        0.5, ge=0, le=10,
        description="Presence changes of this long are told to clients in one frame (0: those of one event-loop turn)",
    )
    max_connections: int = Field(
        10_000, ge=1,
        description="WebSocket connections this gateway serves at once (more: close 1013, try again later); "
        "the open-file limit must allow it",
    )
    query_timeout_seconds: float = Field(5.0, gt=0, description="How long a history/sync query may take")
    send_timeout_seconds: float = Field(
        8.0,
        gt=0,
        description="A send neither acked nor refused this long after it was published is answered "
        "'unavailable' (retryable), whatever hangs behind the gateway",
    )

    @property
    def limits(self) -> Limits:
        """The limits every client is told in its hello frame."""
        return Limits(
            max_body_chars=self.max_body_chars,
            max_frame_bytes=self.max_frame_bytes,
            rate_per_second=self.rate_per_second,
            rate_burst=self.rate_burst,
        )

    @property
    def presence_ttl_seconds(self) -> float:
        """Three missed heartbeats and a gateway counts as gone."""
        return 3 * self.heartbeat_seconds
