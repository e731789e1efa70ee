"""The login / register window against a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from chase.tls import ensure_dev_certs
from client.qt.app import App
from client.qt.qt import Qt
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app, register
from tests.helpers import unused_port, wait_until
from tests.integration.system import PASSWORD, System


def test_register_then_log_in_remembers_server_and_name_but_not_password(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        assert app.chat is not None and app.chat.window.isVisible() and not app.login.isVisible()
        assert app.chat.window.windowTitle() == "ChaSe — alice"
        await close_all(app)

    run(qloop, scenario())
    settings.sync()
    saved = (tmp_path / "chase.ini").read_text()
    assert "alice" in saved and PASSWORD not in saved
    # A new window starts from what was remembered.
    fresh = App(settings)
    assert fresh.login.server.text() == system.auth_url and fresh.login.username.text() == "alice"
    assert fresh.login.password.text() == ""


def test_a_taken_name_is_shown_in_plain_words(qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System,
                                              settings: Any) -> None:
    async def scenario() -> None:
        await register(system, "alice")
        app = make_app(system, settings)
        app.login.username.setText("ALICE")
        app.login.password.setText(PASSWORD)
        qtbot.mouseClick(app.login.register_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: app.login.error.text() != "")
        assert "taken" in app.login.error.text()
        assert app.chat is None and app.login.login_button.isEnabled()
        app.login.password.setText("not the password")
        qtbot.mouseClick(app.login.login_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: "Wrong username or password" in app.login.error.text())
        await close_all(app)

    run(qloop, scenario())


def test_unreachable_server_and_untrusted_certificate(qloop: asyncio.AbstractEventLoop, qtbot: Any,
                                                     system: System, settings: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        nowhere = App(settings, server=f"https://127.0.0.1:{unused_port()}", ca=system.ca_path)
        nowhere.start()
        nowhere.login.username.setText("alice")
        nowhere.login.password.setText(PASSWORD)
        qtbot.mouseClick(nowhere.login.login_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: "cannot be reached" in nowhere.login.error.text())
        await nowhere.shutdown()

        ensure_dev_certs(tmp_path / "other")  # a CA that did not sign the server's certificate
        untrusted = App(settings, server=system.auth_url, ca=tmp_path / "other" / "ca.pem")
        untrusted.start()
        untrusted.login.username.setText("alice")
        untrusted.login.password.setText(PASSWORD)
        qtbot.mouseClick(untrusted.login.login_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: "certificate is not trusted" in untrusted.login.error.text())
        await untrusted.shutdown()

    run(qloop, scenario())


def test_an_expired_session_goes_back_to_login_with_the_reason(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        app = make_app(system, settings)
        await log_in(app, qtbot, "alice", register=True)
        chat = app.chat
        assert chat is not None
        # The session is revoked elsewhere (e.g. logged out on another device).
        await chat.api.logout(chat.session)
        await wait_until(lambda: app.chat is None and app.login.isVisible())
        assert app.login.error.text() == "Your session has ended (session revoked). Please log in again."
        await close_all(app)

    run(qloop, scenario())
