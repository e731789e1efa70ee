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
    login_max_failures: int = Field(5, ge=1, description="Failed logins per username before 429")
    login_window_seconds: float = Field(60.0, gt=0, description="Window the failures are counted in")
    #: Bounds the throttle's memory under a flood of different names.
    login_throttle_max_names: int = Field(
        10_000, ge=1, description="User names whose failures are remembered at once (memory bound)"
    )
    directory_page_default: int = Field(50, ge=1, le=500, description="Users per directory page by default")
    directory_page_max: int = Field(200, ge=1, le=500, description="Largest directory page a client may ask for")
    gateway_url: str = Field(
        "wss://127.0.0.1:8765",
        pattern=r"^wss://",
        description="The gateway address clients are told (GET /api/v1/endpoints): the load balancer "
        "in front of the gateways, as clients reach it",
    )
    # On by default: the figures are counts by outcome, with no user, name or token in them.
    # Turn it off (or block the path at the proxy) when the auth port faces the internet.
    metrics: bool = Field(True, description="Serve GET /metrics (Prometheus text, every service in the process)")
