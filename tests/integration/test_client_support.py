"""Helpers for the client's integration and GUI tests (no tests here): the system's gateway
stopped and started again in place, as a server restart looks to a client."""

from __future__ import annotations

import asyncio

from tests.integration.system import System

#: Index of the gateway task in System._tasks (auth, persistence, gateway).
_GATEWAY = 2


async def stop_gateway(system: System) -> None:
    """Stop the gateway (its clients are closed with 1001); auth and persistence keep running."""
    task = system._tasks[_GATEWAY]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def start_gateway(system: System) -> None:
    """Start a gateway again on the same port and settings; returns once it listens."""
    from services.gateway import main as gateway_main

    started = asyncio.Event()
    task = asyncio.get_running_loop().create_task(
        gateway_main.run(system.gateway_settings, bus=system.bus, started=started)
    )
    system._tasks[_GATEWAY] = task  # so running_system stops this one on exit
    waiter = asyncio.ensure_future(started.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # a gateway that failed to start: show why


async def restart_gateway(system: System) -> None:
    await stop_gateway(system)
    await start_gateway(system)
