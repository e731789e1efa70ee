"""Settings: embedded defaults, shared and per-service variables, and one clear line on error."""

from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from chase.config import DEFAULT_DATABASE_URL, CommonSettings, ConfigError, load


class ServiceSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="CHASE_SVC_", extra="ignore", populate_by_name=True)
    port: int = 1234


def test_defaults_are_the_embedded_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CHASE_DATABASE_URL", "CHASE_AMQP_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load(CommonSettings)
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.embedded


def test_shared_settings_ignore_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHASE_DATABASE_URL", "mysql+aiomysql://root@db/chase")
    monkeypatch.setenv("CHASE_AMQP_URL", "amqp://guest:guest@mq/")
    monkeypatch.setenv("CHASE_SVC_PORT", "9999")
    settings = load(ServiceSettings)
    assert settings.database_url == "mysql+aiomysql://root@db/chase"
    assert not settings.embedded
    assert settings.port == 9999


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CHASE_DATABASE_URL", "postgresql://x/y", "CHASE_DATABASE_URL"),
        ("CHASE_AMQP_URL", "http://mq", "CHASE_AMQP_URL"),
        ("CHASE_SVC_PORT", "eighty", "CHASE_SVC_PORT"),
    ],
)
def test_a_wrong_setting_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load(ServiceSettings)
    message = str(caught.value)
    assert message.startswith(expected) and "\n" not in message


def test_only_chase_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # A host's own DATABASE_URL or LOG_LEVEL must never reconfigure ChaSe.
    for name in ("CHASE_DATABASE_URL", "CHASE_MAX_BODY_CHARS", "CHASE_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "mysql+aiomysql://root@elsewhere/other")
    monkeypatch.setenv("MAX_BODY_CHARS", "12")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load(ServiceSettings)
    assert (settings.database_url, settings.max_body_chars, settings.log_level) == (DEFAULT_DATABASE_URL, 4000, "info")

    from services.gateway.settings import GatewaySettings

    monkeypatch.delenv("CHASE_GATEWAY_ID", raising=False)
    monkeypatch.setenv("GATEWAY_ID", "not-ours")
    assert load(GatewaySettings).gateway_id.startswith("gw-")
    assert GatewaySettings(gateway_id="gw1").gateway_id == "gw1"


def test_settings_are_still_given_by_name_in_code() -> None:
    assert ServiceSettings(max_body_chars=12, port=1).max_body_chars == 12


def test_a_session_lasts_at_least_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.auth.settings import AuthSettings

    monkeypatch.setenv("CHASE_AUTH_SESSION_TTL_SECONDS", "59")
    with pytest.raises(ConfigError, match="^CHASE_AUTH_SESSION_TTL_SECONDS: Input should be greater than or equal to 60"):
        load(AuthSettings)
    monkeypatch.setenv("CHASE_AUTH_SESSION_TTL_SECONDS", "60")
    assert load(AuthSettings).session_ttl_seconds == 60
