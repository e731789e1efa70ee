"""Pick the bus adapter from the settings: in-process when no broker URL is configured."""

from __future__ import annotations

from chase.bus.memory import MemoryBus
from chase.bus.port import Bus


def create_bus(
    amqp_url: str | None, namespace: str = "chase", *, heartbeat: int = 3, reconnect_interval: float = 1.0
) -> Bus:
    """Build (not connect) the bus; the caller must ``await bus.start()`` and later ``close()``.

    With ``amqp_url`` None the bus is in-process: every service that must talk to another has
    to share this one instance (``chase serve``).
    """
    if amqp_url is None:
        return MemoryBus(namespace)
    # Imported here so that the embedded default never loads aio-pika.
    from chase.bus.rabbitmq import RabbitBus

    return RabbitBus(amqp_url, namespace, heartbeat=heartbeat, reconnect_interval=reconnect_interval)
