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
