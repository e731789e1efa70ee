"""The whole system (tests/integration/system.py) on its own thread and event loop.

The desktop client runs on a qasync loop inside Qt; the server gets a plain asyncio loop of
its own, as it would in another process, so neither can starve or reorder the other. Used by
the GUI tests and by ``scripts/screenshots.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.integration.system import System, running_system

T = TypeVar("T")


class ServerThread:
    def __init__(self, database_url: str, certs_dir: Path, *, amqp_url: str | None = None,
                 gateway_overrides: dict[str, object] | None = None) -> None:
        self._args = (database_url, certs_dir, amqp_url, gateway_overrides)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, name="chase-test-server", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.system: System | None = None

    def start(self, timeout: float = 60.0) -> System:
        """Start the system; returns once auth and the gateway listen (raises if they failed)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the test system did not start in time")
        if self._error is not None:
            raise self._error
        assert self.system is not None
        return self.system

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        database_url, certs_dir, amqp_url, overrides = self._args
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_system(database_url, certs_dir=certs_dir, amqp_url=amqp_url,
                                  gateway_overrides=overrides) as system:
            self.system = system
            self._ready.set()
            await self._stop.wait()

    async def run(self, action: Callable[[System], Awaitable[T]]) -> T:
        """Run ``action(system)`` on the server's loop and await its result from another loop."""
        assert self._loop is not None and self.system is not None
        future = asyncio.run_coroutine_threadsafe(self._call(action), self._loop)
        return await asyncio.wrap_future(future)

    async def _call(self, action: Callable[[System], Awaitable[Any]]) -> Any:
        assert self.system is not None
        return await action(self.system)

    def stop(self, timeout: float = 60.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
