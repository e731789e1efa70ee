"""The whole ChaSe system in one test process, over real TLS, for integration, e2e and GUI tests.

::

    async with running_system(database_url, amqp_url=None, certs_dir=dev_certs) as system:
        alice = await system.login("alice")              # registers, logs in: a Login
        async with system.client(alice.token) as ws:     # a TestClient over wss://
            hello = await ws.expect("hello")

Auth (HTTPS), persistence and one gateway (WSS) run as tasks on the current event loop,
sharing one bus and one database, exactly as ``chase serve`` does. With ``amqp_url`` the bus is
RabbitMQ in a namespace of its own (deleted afterwards); otherwise the in-process bus.
``database_url`` must point at an empty database: the schema is migrated here. With
``persistence_database_url`` (the same database by another way, e.g. through a
``tests.faults.TcpForwarder``) the persistence service gets an engine of its own on it, so a
test can cut the worker off from the database while auth and the test's own queries go on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chase.bus.factory import create_bus
from chase.bus.port import Bus
from chase.schemas import ServerFrame, UserRef, decode_server_frame
from chase.store import migrate
from chase.store.engine import create_engine
from chase.tls import client_context
from services.auth.client import AuthClient
from services.auth.settings import AuthSettings
from services.gateway.settings import GatewaySettings
from services.persistence.settings import PersistenceSettings
from tests.helpers import port_open, unused_port, wait_until

PASSWORD = "correct horse battery staple"
#: Index of the gateway task in System._tasks (auth, persistence, gateway).
_GATEWAY = 2


@dataclass(frozen=True)
class Login:
    user: UserRef
    token: str
    session_id: str


class TestClient:
    """A WebSocket client that keeps every frame it received, in order, in :attr:`seen`."""

    __test__ = False  # not a pytest test class

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[ServerFrame] = []
        self._unread = 0

    async def send(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def send_frame(self, **fields: object) -> None:
        import json

        await self.ws.send(json.dumps(fields))

    async def next_frame(self, timeout: float = 10.0) -> ServerFrame:
        """The next unread frame, whatever its type."""
        if self._unread < len(self.seen):
            self._unread += 1
            return self.seen[self._unread - 1]
        async with asyncio.timeout(timeout):
            frame = decode_server_frame(await self.ws.recv())
        self.seen.append(frame)
        self._unread = len(self.seen)
        return frame

    async def expect(
        self, frame_type: str, where: Callable[[ServerFrame], bool] = lambda _: True, timeout: float = 10.0
    ) -> ServerFrame:
        """The next unread frame of ``frame_type`` matching ``where``; others are kept in
        :attr:`seen` and skipped. Fails (TimeoutError) if none arrives in ``timeout``."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next_frame(timeout)
                if frame.type == frame_type and where(frame):
                    return frame

    async def closed(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        """Read until the server closes; the close code and reason."""
        try:
            async with asyncio.timeout(timeout):
                async for data in self.ws:
                    self.seen.append(decode_server_frame(data))
        except ConnectionClosed:
            pass  # raised for any close code but 1000/1001; the code is what we want
        received = self.ws.protocol.close_rcvd
        assert received is not None, "closed without a close frame"
        return received.code, received.reason


@dataclass
class System:
    auth_url: str
    gateway_url: str
    ca_path: Path
    bus: Bus
    engine: object
    gateway_settings: GatewaySettings
    auth: AuthClient
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def login(self, username: str, password: str = PASSWORD, *, register: bool = True) -> Login:
        """Register ``username`` (unless ``register`` is False) and log in: a fresh session."""
        if register:
            await self.auth.register(username, password)
        created = await self.auth.login(username, password)
        return Login(created.user, created.token, created.session_id)

    async def stop_gateway(self) -> None:
        """Stop the gateway (its clients are closed with 1001); auth and persistence keep running."""
        task = self._tasks[_GATEWAY]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def start_gateway(self) -> None:
        """Start the gateway again on the same port and settings; returns once it listens."""
        from services.gateway import main as gateway_main

        started = asyncio.Event()
        task = asyncio.get_running_loop().create_task(
            gateway_main.run(self.gateway_settings, bus=self.bus, started=started)
        )
        self._tasks[_GATEWAY] = task  # so running_system stops this one on exit
        waiter = asyncio.ensure_future(started.wait())
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            task.result()  # a gateway that failed to start: show why

    @asynccontextmanager
    async def client(self, token: str | None, *, url: str | None = None) -> AsyncIterator[TestClient]:
        """A WebSocket client over verified TLS, authenticated with ``token`` (if any), to the
        system's gateway or to ``url``."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with connect(
            url or self.gateway_url, ssl=client_context(self.ca_path), additional_headers=headers, open_timeout=10
        ) as ws:
            yield TestClient(ws)


#: Queues every namespace may have, whoever declared them (a bus's own list misses a queue
#: another bus of the same namespace declared).
WELL_KNOWN_QUEUES = ("persistence.submitted", "persistence.history", "dead-letter")


async def delete_namespace(amqp_url: str, queues: set[str], namespace: str) -> None:
    """Delete a test namespace from the real broker: its queues and its exchanges."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in queues | {f"{namespace}.{q}" for q in WELL_KNOWN_QUEUES}:
            await channel.queue_delete(name)
        for exchange in ("events", "dead-letter"):
            await channel.exchange_delete(f"{namespace}.{exchange}")


@asynccontextmanager
async def running_system(
    database_url: str,
    *,
    certs_dir: Path,
    amqp_url: str | None = None,
    namespace: str | None = None,
    gateway_overrides: dict[str, object] | None = None,
    persistence_database_url: str | None = None,
) -> AsyncIterator[System]:
    """Start auth, persistence and a gateway on fresh ports; stop and clean up on exit."""
    from services.auth import main as auth_main
    from services.gateway import main as gateway_main
    from services.persistence import main as persistence_main

    namespace = namespace or f"test-{uuid.uuid4().hex[:10]}"
    common = {"database_url": database_url, "amqp_url": amqp_url, "certs_dir": certs_dir}
    gateway_port = unused_port()
    # The auth API tells clients this system's gateway, as a deployment's does.
    auth_settings = AuthSettings(**common, port=unused_port(), bcrypt_rounds=4,
                                 gateway_url=f"wss://127.0.0.1:{gateway_port}")
    auth_url = f"https://127.0.0.1:{auth_settings.port}"
    gateway_settings = GatewaySettings(
        **common,
        port=gateway_port,
        auth_url=auth_url,
        gateway_id=f"gw-{uuid.uuid4().hex[:8]}",
        heartbeat_seconds=0.5,
        **(gateway_overrides or {}),
    )
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    persistence_engine = engine
    persistence_common = common
    if persistence_database_url is not None:
        persistence_engine = create_engine(persistence_database_url)
        persistence_common = {**common, "database_url": persistence_database_url}
    bus = create_bus(amqp_url, namespace)
    await bus.start()
    auth = AuthClient(auth_url, ca_path=certs_dir / "ca.pem")
    gateway_started = asyncio.Event()
    loop = asyncio.get_running_loop()
    tasks = [
        loop.create_task(auth_main.run(auth_settings, engine=engine, bus=bus)),
        loop.create_task(
            persistence_main.run(PersistenceSettings(**persistence_common), engine=persistence_engine, bus=bus)
        ),
        loop.create_task(gateway_main.run(gateway_settings, bus=bus, started=gateway_started)),
    ]
    system = System(
        auth_url=auth_url,
        gateway_url=f"wss://127.0.0.1:{gateway_settings.port}",
        ca_path=certs_dir / "ca.pem",
        bus=bus,
        engine=engine,
        gateway_settings=gateway_settings,
        auth=auth,
        _tasks=tasks,
    )
    try:
        await wait_until(lambda: gateway_started.is_set() or any(t.done() for t in tasks))
        await wait_until(lambda: port_open(auth_settings.port))
        for task in tasks:
            if task.done():
                task.result()  # a service that failed to start: show why
        yield system
    finally:
        # Our HTTP client first: uvicorn would wait for its keep-alive connection to go idle.
        # Then the gateway, so its clients are closed while the bus is still there.
        await auth.aclose()
        for task in reversed(tasks):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        declared = set(getattr(bus, "declared_queues", ()))
        await bus.close()
        if persistence_engine is not engine:
            await persistence_engine.dispose()
        await engine.dispose()
        if amqp_url is not None:
            await delete_namespace(amqp_url, declared, namespace)
