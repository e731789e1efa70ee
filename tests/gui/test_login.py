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


def _fill(app: App, name: str = "alice", password: str = PASSWORD) -> None:
    app.login.username.setText(name)
    app.login.password.setText(password)


async def _sessions_open(system: System) -> int:
    import sqlalchemy as sa

    from chase.store.tables import sessions

    async with system.engine.connect() as connection:  # type: ignore[attr-defined]
        return (await connection.execute(
            sa.select(sa.func.count()).select_from(sessions).where(sessions.c.revoked_at.is_(None)))).scalar_one()


def test_a_login_that_cannot_reach_the_gateway_ends_its_session_and_says_so_plainly(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        await register(system, "alice")
        before = await _sessions_open(system)
        app = App(settings, server=system.auth_url, gateway=f"wss://127.0.0.1:{unused_port()}", ca=system.ca_path,
                  enable_audio=False)
        app.start()
        _fill(app)
        qtbot.mouseClick(app.login.login_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: app.login.error.text() != "", timeout=30)
        assert app.chat is None
        assert app.login.error.text().startswith("The server cannot be reached.")
        assert "Error" not in app.login.error.text()  # no exception names in what people read
        error = app.login.error
        assert error.wordWrap()
        await wait_until(lambda: error.height() >= error.heightForWidth(error.width()))  # wrapped, whole
        assert error.width() <= app.login.width()
        assert app.login.details_button.isVisible() and not app.login.details.isVisible()
        qtbot.mouseClick(app.login.details_button, Qt.MouseButton.LeftButton)
        assert app.login.details.isVisible() and "gateway" in app.login.details.text()
        # The session the login made is ended, not left behind.
        assert await _sessions_open(system) == before
        await app.shutdown()

    run(qloop, scenario())


def test_cancel_while_a_server_accepts_but_never_answers(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)  # accepted, never answered

        silent = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        app = App(settings, server=f"https://127.0.0.1:{port}", ca=system.ca_path, enable_audio=False)
        app.start()
        _fill(app)
        qtbot.mouseClick(app.login.register_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: bool(accepted))
        assert app.login.cancel_button.isVisible() and not app.login.login_button.isEnabled()
        qtbot.mouseClick(app.login.cancel_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: app._login_task is not None and app._login_task.done())
        assert app.login.login_button.isEnabled() and not app.login.cancel_button.isVisible()
        assert app.chat is None and app.login.error.text() == ""
        silent.close()
        for writer in accepted:
            writer.close()
        await app.shutdown()

    run(qloop, scenario())


def test_focus_goes_where_the_person_types_next(qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System,
                                                settings: Any) -> None:
    async def scenario() -> None:
        app = make_app(system, settings)
        assert app.login.focusWidget() is app.login.username  # nothing remembered: the name first
        await log_in(app, qtbot, "alice", register=True)
        assert app.chat.window.focusWidget() is app.chat.window.input
        await close_all(app)
        again = make_app(system, settings)
        assert again.login.username.text() == "alice" and again.login.focusWidget() is again.login.password
        await again.shutdown()

    run(qloop, scenario())


def test_the_ca_setting_is_relative_to_the_settings_file_and_the_gateway_is_found_from_the_server(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, tmp_path: Path) -> None:
    import shutil

    from client.core.endpoints import Endpoints
    from client.core.session import open_api
    from client.qt.app import CA_KEY
    from client.qt.login_window import LoginForm, Mode
    from client.qt.qt import QSettings

    config = tmp_path / "config"
    (config / "trust").mkdir(parents=True)
    shutil.copy(system.ca_path, config / "trust" / "chase-ca.pem")
    settings = QSettings(str(config / "chase.ini"), QSettings.Format.IniFormat)
    settings.setValue(CA_KEY, "trust/chase-ca.pem")
    app = App(settings, server=system.auth_url, gateway=system.gateway_url, enable_audio=False)
    assert app.ca_path(system.auth_url) == config / "trust" / "chase-ca.pem"
    assert App(settings, server="https://chat.example.org").ca_path("https://chat.example.org") == \
        config / "trust" / "chase-ca.pem"

    async def scenario() -> None:
        app.start()
        await log_in(app, qtbot, "alice", register=True)  # trusted through the configured CA
        await close_all(app)
        # Without --gateway the server is asked where its gateway is (here not the usual port).
        discover = App(settings, server=system.auth_url, enable_audio=False)
        endpoints = Endpoints.resolve(system.auth_url, None, discover.ca_path(system.auth_url))
        api = open_api(endpoints)
        try:
            found = await discover._endpoints(LoginForm(Mode.LOGIN, system.auth_url, "alice", PASSWORD), api, endpoints)
        finally:
            await api.aclose()
        assert found.gateway_url == system.gateway_url != "wss://127.0.0.1:8765" and found.ca_path == config / "trust" / "chase-ca.pem"

    run(qloop, scenario())
