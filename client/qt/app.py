"""``chase client``: the desktop app's composition root (qasync drives asyncio inside Qt).

Why qasync: the client core is asyncio (websockets, httpx), and Qt has its own event loop.
qasync makes Qt's loop *be* the asyncio loop, so network coroutines and widgets run on one
thread with no locks and no cross-thread signals, and the same core serves the CLI unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chase.logging import configure, get_logger
from client.core.api import AuthApi, AuthSession
from client.core.backoff import BackoffPolicy
from client.core.chat import ChatClient
from client.core.e2ee.setup import open_e2ee
from client.core.e2ee.vault import keyring_available
from client.core.endpoints import DEFAULT_SERVER, LOCAL_HOSTS, Endpoints
from client.core.errors import ClientError
from client.core.session import chat_client, local_state, open_api, with_told_gateway
from client.qt.account_prefs import AccountPrefs
from client.qt.chat_controller import AskUnsent, ChatController
from client.qt.e2ee_controller import E2EEController
from client.qt.login_window import LoginForm, LoginWindow, Mode
from client.qt.main_window import ask_about_unsent
from client.qt.notifier import Notifier
from client.qt.qt import QApplication, QObject, QSettings
from client.qt.sound import Chime
from client.qt.theme import ThemeManager
from client.qt.wording import plain_words

log = get_logger(__name__)

#: Where the desktop app keeps the CA file to trust, if the person sets one (relative paths
#: are relative to the settings file's folder).
CA_KEY = "connection/ca"
#: The development CA of this checkout (``make run`` / ``chase certs`` write it there).
CHECKOUT_CA = Path(__file__).resolve().parents[2] / "certs" / "ca.pem"
#: How long ending a half-made login's session may take before giving up on it.
LOGOUT_BOUND = 5.0


class App(QObject):
    """Login window first; after a login the main window; back to login on logout or expiry."""

    def __init__(self, settings: QSettings, *, server: str | None = None, gateway: str | None = None,
                 ca: Path | None = None, policy: BackoffPolicy | None = None, enable_audio: bool = True,
                 data_dir: Path | None = None, use_tray: bool = True,
                 open_url: Callable[[str], object] | None = None,
                 ask_unsent: AskUnsent = ask_about_unsent) -> None:
        """``data_dir`` holds each account's unsent messages (default: the platform's data dir)."""
        super().__init__()
        self._data_dir, self._ask_unsent = data_dir, ask_unsent
        self.settings = settings
        self.login = LoginWindow(settings, server or DEFAULT_SERVER)
        if server:
            self.login.server.setText(server)
        self.chime = Chime(settings, enable_audio=enable_audio)
        #: One tray icon for the app's life (not per login): notifications and the unread badge.
        self.notifier = Notifier(self.chime, use_tray=use_tray)
        self.theme = ThemeManager(QApplication.instance(), settings)  # type: ignore[arg-type]
        self.theme.apply()
        self._open_url = open_url
        self.chat: ChatController | None = None
        self.e2ee_ui: E2EEController | None = None
        self.finished = asyncio.Event()
        self._gateway, self._ca, self._policy = gateway, ca, policy
        self._tasks: set[asyncio.Task[Any]] = set()
        self._login_task: asyncio.Task[None] | None = None
        self.login.submitted.connect(self._on_submitted)
        self.login.cancelled.connect(self._on_cancelled)
        # Closing the login window while no one is logged in quits the app.
        self.login.closing.connect(lambda: None if self.chat else self.finished.set())

    def start(self) -> None:
        self.login.show()

    def _on_submitted(self, form: LoginForm) -> None:
        task = asyncio.ensure_future(self._log_in(form))
        self._tasks.add(task)
        self._login_task = task
        task.add_done_callback(self._tasks.discard)

    def _on_cancelled(self) -> None:
        if self._login_task is not None and not self._login_task.done():
            self._login_task.cancel()

    def ca_path(self, server: str) -> Path | None:
        """The CA to trust: ``--ca``, else the ``connection/ca`` setting (a relative path is
        relative to the settings file's folder, never to the current one), else the development
        CA for a local server (next to the settings, or where ``chase certs`` writes it in this
        checkout); None: the system's trust store."""
        if self._ca is not None:
            return self._ca
        config_dir = Path(self.settings.fileName()).parent
        configured = str(self.settings.value(CA_KEY, "") or "").strip()
        if configured:
            path = Path(configured).expanduser()
            return path if path.is_absolute() else config_dir / path
        if (urlsplit(server if "://" in server else "https://" + server).hostname or "") not in LOCAL_HOSTS:
            return None
        beside = config_dir / "certs" / "ca.pem"
        return beside if beside.exists() else CHECKOUT_CA

    async def _endpoints(self, form: LoginForm, api: AuthApi, endpoints: Endpoints) -> Endpoints:
        """Ask the server where its gateway is, unless ``--gateway`` said; an older server that
        does not say (404) has it on the same host, at the usual port."""
        if self._gateway is not None:
            return endpoints
        return await with_told_gateway(api, endpoints)

    async def _log_in(self, form: LoginForm) -> None:
        try:
            endpoints = Endpoints.resolve(form.server, self._gateway, self.ca_path(form.server))
        except ValueError as exc:
            self.login.show_error("The server address must look like https://chat.example.org:8443.",
                                  details=str(exc))
            return
        try:
            api = open_api(endpoints)
        except ClientError as exc:
            self.login.show_error(plain_words(exc), details=exc.message)
            return
        session: AuthSession | None = None
        client: ChatClient | None = None
        try:
            endpoints = await self._endpoints(form, api, endpoints)
            if form.mode is Mode.REGISTER:
                self.login.set_busy(True, "Creating your account…")
                await api.register(form.username, form.password)
            self.login.set_busy(True, "Logging in…")
            session = await api.login(form.username, form.password)
            users = await api.all_users(session)
            self.login.set_busy(True, "Connecting to the chat…")
            # Private conversations are end-to-end encrypted (docs/e2ee.md); the device's keys
            # are kept under the OS keyring, else under the account password.
            e2ee = await open_e2ee(api, session, endpoints.auth_url, data_dir=self._data_dir,
                                   passphrase=None if keyring_available() else form.password)
            client = chat_client(endpoints, session, policy=self._policy,
                                 local=local_state(endpoints, session, self._data_dir), e2ee=e2ee)
            await client.start()
        except (ClientError, asyncio.CancelledError) as exc:
            # Nothing half-done stays behind: the session this login created is ended.
            await self._undo_login(api, session, client)
            if isinstance(exc, asyncio.CancelledError):
                self.login.show_error("")
                raise
            self.login.show_error(plain_words(exc), details=exc.message)
            return
        self.login.remember(form)
        prefs = AccountPrefs(self.settings, endpoints.auth_url, session.user.id)
        self.chat = ChatController(client, api, session, users, self.notifier, prefs, ask_unsent=self._ask_unsent,
                                   settings=self.settings, theme=self.theme, open_url=self._open_url)
        names = {user.id: user.username for user in users}
        e2ee.name_of = lambda user_id: names.get(user_id, f"user {user_id}")
        e2ee.on_notice = self.chat.window.show_notice
        self.e2ee_ui = E2EEController(e2ee, self.chat.window, e2ee.name_of)
        self.chat.session_ended.connect(self._on_session_ended)
        self.chat.logged_out.connect(lambda: self._spawn(self._back_to_login("")))
        self.chat.window.show()
        self.chat.window.closing.connect(self._on_main_closed)
        self.login.reset()
        self.login.hide()
        # Where the person types next: the message box, not the sidebar.
        self.chat.window.activateWindow()
        self.chat.window.input.setFocus()

    @staticmethod
    async def _undo_login(api: AuthApi, session: AuthSession | None, client: ChatClient | None) -> None:
        if client is not None:
            await client.close()
        if session is not None:
            try:
                await asyncio.wait_for(api.logout(session), LOGOUT_BOUND)
            except (ClientError, TimeoutError):
                log.info("client.login_undo_failed")  # it expires by itself on the server
        await api.aclose()

    def _spawn(self, coroutine) -> None:  # noqa: ANN001
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_session_ended(self, reason: str) -> None:
        why = f" ({reason.rstrip('.')})" if reason else ""
        self._spawn(self._back_to_login(f"Your session has ended{why}. Please log in again."))

    async def _back_to_login(self, reason: str) -> None:
        chat, self.chat = self.chat, None
        self.login.reset(reason)
        self.login.show()
        if chat is not None:
            chat.window.closing.disconnect(self._on_main_closed)
            await chat.close()

    def _on_main_closed(self) -> None:
        self._spawn(self.shutdown())

    async def shutdown(self) -> None:
        """Log out, disconnect and close every window; then :attr:`finished` is set."""
        chat, self.chat = self.chat, None
        if chat is not None:
            try:
                await asyncio.wait_for(chat.api.logout(chat.session), LOGOUT_BOUND)
            except (ClientError, TimeoutError):
                pass  # the server may be gone: the session expires there by itself
            await chat.close()
        self.login.close()
        self.notifier.close()
        self.finished.set()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chase client", description="The ChaSe desktop client.")
    parser.add_argument("--server", default=None, help=f"auth API address (default {DEFAULT_SERVER})")
    parser.add_argument("--gateway", default=None,
                        help="gateway address (default: what the server says, else wss://<server host>:8765)")
    parser.add_argument("--ca", type=Path, default=None,
                        help=f"CA file (default: the {CA_KEY} setting, else the development CA for a local server)")
    parser.add_argument("--attempts", type=int, default=8,
                        help="fast reconnect attempts before slow ones (Retry then tries at once)")
    return parser


def main(argv: list[str]) -> int:
    """Open the login window and run until the user closes the app; returns the exit code."""
    import qasync

    args = build_parser().parse_args(argv)
    configure("warning")
    # The audio back-end probes are noise for users; real problems still show as warnings.
    os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.*.debug=false;qt.multimedia.symbolsresolver=false")
    qt_app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "chase"])
    qt_app.setApplicationName("ChaSe")
    qt_app.setOrganizationName("ChaSe")
    qt_app.setQuitOnLastWindowClosed(False)  # we quit after logging out, not before
    loop = qasync.QEventLoop(qt_app)
    asyncio.set_event_loop(loop)
    app = App(QSettings(), server=args.server, gateway=args.gateway, ca=args.ca,
              policy=BackoffPolicy(max_attempts=max(1, args.attempts)))
    with loop:
        app.start()
        loop.run_until_complete(app.finished.wait())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
