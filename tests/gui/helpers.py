"""Shared steps for the GUI tests: build the app, log in through the window, a second user."""

from __future__ import annotations

from typing import Any

from client.core.api import AuthApi, AuthSession
from client.core.backoff import BackoffPolicy
from client.core.chat import ChatClient
from client.core.e2ee.setup import open_e2ee
from client.core.endpoints import Endpoints
from client.core.session import chat_client, open_api
from client.qt.app import App
from client.qt.qt import Qt
from tests.helpers import wait_until
from tests.integration.system import PASSWORD, System


def endpoints(system: System) -> Endpoints:
    return Endpoints.resolve(system.auth_url, system.gateway_url, system.ca_path)


def make_app(system: System, settings: Any, *, attempts: int = 60, **options: Any) -> App:
    """The real app, pointed at the test system; audio off (tests count chime requests)."""
    policy = BackoffPolicy(base=0.05, cap=0.3, max_attempts=attempts)
    app = App(settings, server=system.auth_url, gateway=system.gateway_url, ca=system.ca_path,
              policy=policy, enable_audio=False, **options)
    app.start()
    return app


async def register(system: System, name: str) -> AuthSession:
    api = open_api(endpoints(system))
    try:
        await api.register(name, PASSWORD)
        return await api.login(name, PASSWORD)
    finally:
        await api.aclose()


#: The auth API clients the other users' encryption talks through, closed by ``close_all``.
_peer_apis: dict[int, AuthApi] = {}


async def other_user(system: System, name: str, *, e2ee: bool = True) -> ChatClient:
    """Another user, connected through the client core with end-to-end encryption on, as a
    second desktop runs it (so private messages to and from the desktop are encrypted).
    ``e2ee=False``: private messages it sends are server-readable (``chase cli --no-e2ee``)."""
    session = await register(system, name)
    policy = BackoffPolicy(base=0.05, cap=0.3, max_attempts=60)
    if not e2ee:
        client = chat_client(endpoints(system), session, policy=policy)
        await client.start()
        return client
    api = open_api(endpoints(system))
    keys = await open_e2ee(api, session, system.auth_url, passphrase=f"{name}'s vault")
    client = chat_client(endpoints(system), session, policy=policy, e2ee=keys)
    _peer_apis[id(client)] = api
    await client.start()
    return client


async def log_in(app: App, qtbot: Any, name: str, *, password: str = PASSWORD, register: bool = False) -> None:
    """Fill in the login window and press the button; returns once the main window is up."""
    app.login.username.setText(name)
    app.login.password.setText(password)
    button = app.login.register_button if register else app.login.login_button
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: app.chat is not None or app.login.error.text() != "", timeout=30)
    assert app.chat is not None, app.login.error.text()
    app.chat.window.activateWindow()
    await wait_until(lambda: app.chat.window.isActiveWindow())


async def close_all(app: App, *clients: ChatClient) -> None:
    for client in clients:
        await client.close()
        api = _peer_apis.pop(id(client), None)
        if api is not None:
            await api.aclose()
    await app.shutdown()
