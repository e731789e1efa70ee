"""Settings shared by every service, read from ``CHASE_*`` environment variables.

Each service has its own ``BaseSettings`` subclass (``services/<name>/settings.py``) built on
:class:`CommonSettings`. Nothing here is read at import time: a composition root builds the
settings object and passes it on.

The defaults give the *embedded* deployment: an SQLite file under ``var/`` and the in-process
bus. Setting ``CHASE_DATABASE_URL`` and ``CHASE_AMQP_URL`` switches to MySQL and RabbitMQ with
no other change.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/chase.db"
SUPPORTED_DATABASE_SCHEMES = ("sqlite+aiosqlite", "mysql+aiomysql")
SUPPORTED_AMQP_SCHEMES = ("amqp", "amqps")


class ConfigError(Exception):
    """A setting is wrong or unusable; the message names the setting and says what to do."""


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHASE_", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or mysql+aiomysql://user:pw@host/db",
    )
    amqp_url: str | None = Field(
        None, description="RabbitMQ URL (amqp://user:pw@host:5672/vhost); unset: in-process bus"
    )
    certs_dir: Path = Field(Path("certs"), description="Where `chase certs` writes the dev CA")
    tls_cert: Path | None = Field(None, description="Server certificate (PEM); default certs/server.pem")
    tls_key: Path | None = Field(None, description="Server private key (PEM); default certs/server-key.pem")
    tls_ca: Path | None = Field(None, description="CA bundle clients trust; default certs/ca.pem")
    log_level: str = "info"
    log_json: bool = Field(False, description="Log one JSON object per line (for fleets)")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        scheme = url.split("://", 1)[0]
        if scheme not in SUPPORTED_DATABASE_SCHEMES:
            raise ValueError(
                f"CHASE_DATABASE_URL must start with one of {', '.join(SUPPORTED_DATABASE_SCHEMES)}"
                f"://, got {scheme!r}"
            )
        return url

    @field_validator("amqp_url")
    @classmethod
    def _known_broker(cls, url: str | None) -> str | None:
        if not url:
            return None
        scheme = url.split("://", 1)[0]
        if scheme not in SUPPORTED_AMQP_SCHEMES:
            raise ValueError(f"CHASE_AMQP_URL must start with amqp:// or amqps://, got {scheme!r}")
        return url

    @property
    def server_cert_path(self) -> Path:
        return self.tls_cert or self.certs_dir / "server.pem"

    @property
    def server_key_path(self) -> Path:
        return self.tls_key or self.certs_dir / "server-key.pem"

    @property
    def ca_path(self) -> Path:
        return self.tls_ca or self.certs_dir / "ca.pem"

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: all services must share one process."""
        return self.amqp_url is None


def load(settings_cls: type[CommonSettings], **overrides: object) -> CommonSettings:
    """Build settings from the environment, turning validation errors into one clear line."""
    from pydantic import ValidationError

    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "CHASE_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("; ".join(lines)) from None
