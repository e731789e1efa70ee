"""The bus port: publish events to a topic exchange, consume queues with acks, request/reply.

Services depend on :class:`chase.bus.port.Bus` only. Two adapters implement it with the same
routing semantics: ``memory.MemoryBus`` (in-process, the embedded default) and
``rabbitmq.RabbitBus`` (aio-pika). :func:`chase.bus.factory.create_bus` picks one from the
settings. The contract tests in ``tests/integration/test_bus_contract.py`` run against both.
"""

from chase.bus.port import Bus, BusUnavailable, Delivery, QueueSpec, RequestTimeout, Subscription

__all__ = ["Bus", "BusUnavailable", "Delivery", "QueueSpec", "RequestTimeout", "Subscription"]
