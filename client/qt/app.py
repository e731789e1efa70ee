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
from pathlib import Path
from typing import Any

from chase.logging import configure, get_logger
from client.core.backoff import BackoffPolicy
from client.core.e2ee.setup import open_e2ee
from client.core.e2ee.vault import keyring_available
from client.core.endpoints import DEFAULT_SERVER, Endpoints
from client.core.errors import ClientError
from client.core.session import chat_client, local_state, open_api
from client.qt.chat_controller import AskUnsent, ChatController
from client.qt.e2ee_controller import E2EEController
from client.qt.login_window import LoginForm, LoginWindow, Mode
from client.qt.main_window import ask_about_unsent
from client.qt.qt import QApplication, QObject, QSettings
from client.qt.sound import Chime
from client.qt.wording import plain_words

log = get_logger(__name__)


class App(QObject):
    """Login window first; after a login the main window; back to login on logout or expiry."""

    def __init__(self, settings: QSettings, *, server: str | None = None, gateway: str | None = None,
                 ca: Path | None = None, policy: BackoffPolicy | None = None, enable_audio: bool = True,
                 data_dir: Path | None = None,
                 ask_unsent: AskUnsent = ask_about_unsent) -> None:
        """``data_dir`` holds each account's unsent messages (default: the platform's data dir)."""
        super().__init__()
        self._data_dir, self._ask_unsent = data_dir, ask_unsent
        self.settings = settings
        self.login = LoginWindow(settings, server or DEFAULT_SERVER)
        if server:
            self.login.server.setText(server)
        self.chime = Chime(settings, enable_audio=enable_audio)
        self.chat: ChatController | None = None
        self.e2ee_ui: E2EEController | None = None
        self.finished = asyncio.Event()
        self._gateway, self._ca, self._policy = gateway, ca, policy
        self._tasks: set[asyncio.Task[Any]] = set()
        self.login.submitted.connect(self._on_submitted)
        # Closing the login window while no one is logged in quits the app.
        self.login.closing.connect(lambda: None if self.chat else self.finished.set())

    def start(self) -> None:
        self.login.show()

    def _on_submitted(self, form: LoginForm) -> None:
        task = asyncio.ensure_future(self._log_in(form))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _log_in(self, form: LoginForm) -> None:
        try:
            endpoints = Endpoints.resolve(form.server, self._gateway, self._ca)
        except ValueError as exc:
            self.login.show_error(str(exc))
            return
        try:
            api = open_api(endpoints)
        except ClientError as exc:
            self.login.show_error(plain_words(exc))
            return
        try:
            if form.mode is Mode.REGISTER:
                await api.register(form.username, form.password)
            session = await api.login(form.username, form.password)
            users = await api.all_users(session)
            # Private conversations are end-to-end encrypted (docs/e2ee.md); the device's keys
            # are kept under the OS keyring, else under the account password.
            e2ee = await open_e2ee(api, session, endpoints.auth_url, data_dir=self._data_dir,
                                   passphrase=None if keyring_available() else form.password)
            client = chat_client(endpoints, session, policy=self._policy,
                                 local=local_state(endpoints, session, self._data_dir), e2ee=e2ee)
            await client.start()
        except ClientError as exc:
            await api.aclose()
            self.login.show_error(plain_words(exc))
            return
        self.login.remember(form)
        self.chat = ChatController(client, api, session, users, self.chime, ask_unsent=self._ask_unsent)
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
                await chat.api.logout(chat.session)
            except ClientError:
                pass  # the server may be gone: nothing more to do
            await chat.close()
        self.login.close()
        self.finished.set()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chase client", description="The ChaSe desktop client.")
    parser.add_argument("--server", default=None, help=f"auth API address (default {DEFAULT_SERVER})")
    parser.add_argument("--gateway", default=None, help="gateway address (default wss://<server host>:8765)")
    parser.add_argument("--ca", type=Path, default=None, help="CA file (default certs/ca.pem for a local server)")
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
