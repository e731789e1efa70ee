"""Settings of the HTTP auth service: ``CHASE_AUTH_*`` environment variables (shared ones ``CHASE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chase.config import CommonSettings

THIRTY_DAYS = 30 * 24 * 3600


class AuthSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="CHASE_AUTH_", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", description="Address the HTTPS server listens on")
    port: int = Field(8443, ge=0, le=65535, description="HTTPS port")
    session_ttl_seconds: int = Field(THIRTY_DAYS, ge=60, description="How long a login stays valid")
    # 12 rounds is ~0.25 s per hash on a laptop core: slow for an attacker, fine for a login.
    bcrypt_rounds: int = Field(12, ge=4, le=16, description="bcrypt cost factor (tests use 4)")
    login_free_failures_per_address: int = Field(
        20, ge=1, description="Failed logins from one client address before each further one waits (1 s, doubling)"
    )
    login_free_failures_per_pair: int = Field(
        4, ge=1, description="Failed logins for one name from one address before each further one waits"
    )
    login_free_failures_per_account: int = Field(
        10, ge=1, description="Failed logins for one name from anywhere before each further one waits"
    )
    login_account_delay_cap_seconds: float = Field(
        30.0, gt=0, description="Longest wait the per-name scope imposes (the owner waits at most this)"
    )
    login_address_delay_cap_seconds: float = Field(
        900.0, gt=0, description="Longest wait the per-address and per-address-and-name scopes impose"
    )
    login_checks_per_address: int = Field(
        2, ge=1, description="Password checks one client address may have in progress at once (more: 429 at once)"
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses of reverse proxies whose X-Forwarded-For is believed; "
        "empty: the header is ignored and the peer address counts",
    )
    max_body_bytes: int = Field(16_384, ge=1024, description="Largest request body; larger ones get 413 unread")
    body_timeout_seconds: float = Field(10.0, gt=0, description="How long a request body may take to arrive (408)")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="How long a connection may take for its TLS handshake, and for each request's headers, before it is dropped"
    )
    idle_timeout_seconds: float = Field(
        10.0,
        ge=5.0,
        description="How long an idle keep-alive connection stays open (at least 5 s: longer than the"
        " gateway's token checker keeps an idle connection, 4 s)",
    )
    max_connections: int = Field(1000, ge=1, description="Open HTTPS connections; past it new ones are dropped")
    max_concurrent_requests: int = Field(100, ge=1, description="Requests in progress; past it 503 with Retry-After")
    purge_interval_seconds: float = Field(
        3600.0, gt=0, description="How often expired and revoked sessions and stale login counters are deleted"
    )
    directory_page_default: int = Field(50, ge=1, le=500, description="Users per directory page by default")
    directory_page_max: int = Field(200, ge=1, le=500, description="Largest directory page a client may ask for")
    gateway_url: str = Field(
        "wss://127.0.0.1:8765",
        pattern=r"^wss://",
        description="The gateway address clients are told (GET /api/v1/endpoints): the load balancer "
        "in front of the gateways, as clients reach it",
    )
