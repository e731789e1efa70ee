"""Structured logging for every service (structlog over the standard library).

Configure once, in an entry point. Never log a password, a token or a token hash: log user ids
and session ids instead. Three guards hold that at every level, ``debug`` included:

- libraries that log what passes through them (SQL parameters, WebSocket frames and handshake
  headers, AMQP frames) are held at WARNING whatever ``CHASE_LOG_LEVEL`` says;
- a processor replaces the value of any field named like a secret (``password``, ``token``,
  ``authorization``, ``body``...) with ``[redacted]``;
- :class:`RateLimitFilter` lets each distinct message through at most ``burst`` times per
  ``interval`` and then counts what it dropped, so a flood of one error (accept() failing
  when file descriptors run out, a client hammering) cannot fill a disk.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

#: Loggers of libraries that log payloads or headers at DEBUG/INFO; never below WARNING.
QUIET_LIBRARIES = (
    "sqlalchemy", "aiosqlite", "aiomysql", "websockets", "aiormq", "aio_pika", "pamqp", "httpx", "httpcore",
    "uvicorn.access", "alembic", "hpack", "multipart",
)
#: Field names whose values never reach a log line.
SECRET_FIELDS = frozenset({
    "password", "passwd", "token", "access_token", "authorization", "password_hash", "token_hash", "cookie",
    "secret", "body", "text",
})
REDACTED = "[redacted]"


def redact_secrets(_logger: object, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: blank the values of fields named like secrets."""
    for key in event.keys() & SECRET_FIELDS:
        event[key] = REDACTED
    return event


class RateLimitFilter(logging.Filter):
    """At most ``burst`` records of one message (logger, level, text) per ``interval`` seconds.

    The first record let through after a quiet spell carries ``suppressed=N``: how many were
    dropped. Memory is bounded by ``max_keys`` distinct messages.
    """

    def __init__(self, burst: int = 20, interval: float = 10.0, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 2000) -> None:
        super().__init__()
        self.burst, self.interval, self._clock, self._max_keys = burst, interval, clock, max_keys
        self._windows: dict[tuple[str, int, str], list[float | int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg.get("event", "") if isinstance(record.msg, dict) else record.msg
        key = (record.name, record.levelno, str(message)[:200])
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.interval:
            dropped = int(window[2]) if window is not None else 0
            if len(self._windows) >= self._max_keys:
                self._windows.clear()
            self._windows[key] = [now, 1, 0]
            if dropped and isinstance(record.msg, dict):
                record.msg["suppressed"] = dropped
            elif dropped:
                record.msg = f"{record.msg} ({dropped} similar messages suppressed)"
            return True
        if window[1] < self.burst:
            window[1] += 1
            return True
        window[2] += 1
        return False


def configure(level: str = "info", *, json: bool = False) -> None:
    """Route structlog and stdlib logging to stderr, as key=value lines or JSON lines."""
    # Plain tracebacks: a "pretty" one would print local variables, and they may hold secrets.
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.plain_traceback
    )
    shared = [
        structlog.contextvars.merge_contextvars,
        redact_secrets,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RateLimitFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer,
        ])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter that says nothing an operator needs, and at DEBUG logs SQL parameters,
    # frames and headers (password hashes, tokens, message bodies): WARNING at any level.
    for noisy in QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


def bind(**values: object) -> None:
    """Add ``values`` to every log line of the current task and of the tasks it starts from now
    on (structlog context variables): a request id, a connection id."""
    structlog.contextvars.bind_contextvars(**values)
