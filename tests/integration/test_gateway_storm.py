"""Many clients at once on one gateway: presence gathered into frames, the connection cap."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from chase.schemas import PresenceFrame
from client.core.events import PresenceChanged
from tests.helpers import wait_until
from tests.integration.system import System, TestClient, running_system
from tests.integration.test_client_core import connected, login

pytestmark = pytest.mark.timeout(120)

CROWD = 25


def apply(view: set[int], frame: PresenceFrame) -> None:
    """What a client does with a ``presence`` frame."""
    online, offline = {u.id for u in frame.online}, {u.id for u in frame.offline}
    assert not online & offline, "a user is in one list at most"
    view |= online
    view -= offline


async def presence_view(client: TestClient, view: set[int], until: set[int]) -> set[int]:
    """Apply the client's presence frames to ``view`` until it is ``until`` (or time runs out)."""
    async with asyncio.timeout(30):
        while view != until:
            apply(view, await client.expect("presence"))
    return view


async def test_a_client_among_many_connecting_at_once_sees_who_is_online(system: System) -> None:
    watcher = await system.login("watcher")
    # One by one: concurrent logins from one address race on its throttle row.
    crowd = [await system.login(f"crowd{i}") for i in range(CROWD)]
    everyone = {watcher.user.id} | {c.user.id for c in crowd}
    async with system.client(watcher.token) as w:
        view = set((await w.expect("hello")).online_user_ids)
        assert view == {watcher.user.id}
        # The desktop client's core, connected among the crowd: its set of online users.
        session = await login(system, "corewatcher")
        core, events = await connected(system, session)
        everyone.add(session.user.id)
        try:
            async with AsyncExitStack() as stack:
                clients = await asyncio.gather(*(stack.enter_async_context(system.client(c.token)) for c in crowd))
                hellos = await asyncio.gather(*(c.expect("hello") for c in clients))
                # Each hello already holds everyone who connected before it, itself included.
                for c, hello in zip(crowd, hellos, strict=True):
                    assert c.user.id in hello.online_user_ids
                await presence_view(w, view, everyone)
                await wait_until(lambda: core.online == everyone, timeout=30)
                # The core told its subscribers (the desktop's presence list) of each of them.
                told = {e.user_id for e in events if isinstance(e, PresenceChanged) and e.online}
                assert {c.user.id for c in crowd} <= told
            # The crowd leaves at once: gathered the same way, and the view is right again.
            await presence_view(w, view, {watcher.user.id, session.user.id})
            await wait_until(lambda: core.online == {watcher.user.id, session.user.id}, timeout=30)
        finally:
            await core.close()


async def test_a_full_gateway_refuses_with_try_again_later(dev_certs, sqlite_url: str) -> None:  # noqa: ANN001
    async with running_system(sqlite_url, certs_dir=dev_certs, gateway_overrides={"max_connections": 2}) as system:
        users = [await system.login(f"user{i}") for i in range(3)]
        async with system.client(users[0].token) as a, system.client(users[1].token) as b:
            await a.expect("hello")
            await b.expect("hello")
            async with system.client(users[2].token) as c:
                code, reason = await c.closed()
                assert code == 1013 and reason == "this gateway is full, try again later"
        # Places are given back when connections end.
        async with system.client(users[2].token) as c:
            await c.expect("hello")
