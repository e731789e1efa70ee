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

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/chase.db"
#: MariaDB through asyncmy (compiled: a page of 200 messages decodes in about a third of the CPU)
#: or aiomysql (pure Python); both keep the engine's fault handling (chase/store/engine.py).
SUPPORTED_DATABASE_SCHEMES = ("sqlite+aiosqlite", "mysql+asyncmy", "mysql+aiomysql")
SUPPORTED_AMQP_SCHEMES = ("amqp", "amqps")


class ConfigError(Exception):
    """A setting is wrong or unusable; the message names the setting and says what to do."""


def shared(name: str) -> AliasChoices:
    """The env var of a setting every service shares: ``CHASE_<NAME>``, whatever the prefix.

    Only that name: an alias without the prefix would also be read from the environment (a
    host's own ``DATABASE_URL``). Code still passes the field by name (``populate_by_name``).
    """
    return AliasChoices(f"CHASE_{name.upper()}")


class CommonSettings(BaseSettings):
    """What every service reads. A service's own settings use its own prefix
    (``CHASE_AUTH_PORT``, ``CHASE_GATEWAY_PORT``), so one environment can configure all
    services of ``chase serve`` without clashes; these shared ones are always ``CHASE_*``.
    """

    model_config = SettingsConfigDict(env_prefix="CHASE_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        validation_alias=shared("database_url"),
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or mysql+asyncmy://user:pw@host/db "
        "(mysql+aiomysql:// also works)",
    )
    database_connect_timeout_seconds: float = Field(
        validation_alias=shared("database_connect_timeout_seconds"),
        default=5.0,
        gt=0,
        description="Longest wait to connect to the database (or for a pooled connection)",
    )
    database_statement_timeout_seconds: float = Field(
        validation_alias=shared("database_statement_timeout_seconds"),
        default=5.0,
        gt=0,
        description="Longest a database statement or lock wait may take (MariaDB max_statement_time and "
        "innodb_lock_wait_timeout; SQLite busy timeout); a transaction left idle twice as long is ended",
    )
    amqp_url: str | None = Field(
        validation_alias=shared("amqp_url"),
        default=None,
        description="RabbitMQ URL (amqp://user:pw@host:5672/vhost); unset: in-process bus",
    )
    amqp_heartbeat_seconds: int = Field(
        validation_alias=shared("amqp_heartbeat_seconds"),
        default=3,
        ge=1,
        le=60,
        description="RabbitMQ heartbeat timeout: the broker drops a connection silent for two to three times "
        "this long (a hung process, a frozen link)",
    )
    amqp_reconnect_seconds: float = Field(
        validation_alias=shared("amqp_reconnect_seconds"),
        default=1.0,
        gt=0,
        description="Pause between attempts to reconnect to RabbitMQ after the connection was lost",
    )
    bus_namespace: str = Field(
        validation_alias=shared("bus_namespace"),
        default="chase",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Prefix of the exchange and queue names, so several systems can share a broker",
    )
    certs_dir: Path = Field(
        validation_alias=shared("certs_dir"),
        default=Path("certs"),
        description="Where `chase certs` writes the dev CA",
    )
    tls_cert: Path | None = Field(
        validation_alias=shared("tls_cert"),
        default=None,
        description="Server certificate (PEM); default certs/server.pem",
    )
    tls_key: Path | None = Field(
        validation_alias=shared("tls_key"),
        default=None,
        description="Server private key (PEM); default certs/server-key.pem",
    )
    tls_ca: Path | None = Field(
        validation_alias=shared("tls_ca"),
        default=None,
        description="CA bundle clients trust; default certs/ca.pem",
    )
    max_body_chars: int = Field(
        validation_alias=shared("max_body_chars"),
        default=4000,
        ge=1,
        description="Longest message body, in characters (the gateway refuses, the worker re-checks)",
    )
    metrics_port: int = Field(
        validation_alias=shared("metrics_port"),
        default=0,
        ge=0,
        le=65535,
        description="Serve this process's metrics over HTTPS (GET /metrics, the server certificate) "
        "on this port; 0: off. Never on the public auth port",
    )
    metrics_host: str = Field(
        validation_alias=shared("metrics_host"),
        default="127.0.0.1",
        description="Address the metrics port listens on (keep it on an internal network)",
    )
    health_port: int = Field(
        validation_alias=shared("health_port"),
        default=0,
        ge=0,
        le=65535,
        description="Serve GET /healthz (alive) and GET /readyz (broker and database usable) over plain HTTP "
        "on this port, for orchestrators and load balancers; 0: off",
    )
    health_host: str = Field(
        validation_alias=shared("health_host"),
        default="127.0.0.1",
        description="Address the health port listens on (keep it on an internal network)",
    )
    log_level: str = Field("info", validation_alias=shared("log_level"), description="debug, info, warning or error")
    log_json: bool = Field(
        validation_alias=shared("log_json"),
        default=False,
        description="Log one JSON object per line (for fleets)",
    )

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
        prefix = settings_cls.model_config.get("env_prefix", "CHASE_")
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper()
            if not name.startswith("CHASE_"):
                name = prefix.upper() + name
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("; ".join(lines)) from None
