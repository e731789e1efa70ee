"""``make screenshots``: render the desktop client's windows to docs/images/ from a real system.

Starts the whole system in-process (embedded default: SQLite and the in-process bus, with
throwaway certificates), registers alice, bob and carol, has them exchange a few messages
through the real client core, then shows the real windows on Qt's offscreen platform and
saves them: docs/images/login.png, public.png and private.png; a group room bob made with
alice and carol in it, room.png; then stops the gateway, has alice write a message, and saves
pending.png (the message shown at once, not sent yet).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ holds the in-process system this script starts
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.*=false")

PASSWORD = "correct horse battery staple"
OUT = ROOT / "docs" / "images"


async def _user(endpoints, name: str):  # noqa: ANN001, ANN202
    from client.core.session import chat_client, open_api

    api = open_api(endpoints)
    try:
        await api.register(name, PASSWORD)
        session = await api.login(name, PASSWORD)
    finally:
        await api.aclose()
    client = chat_client(endpoints, session)
    await client.start()
    return client


async def _say(client, body: str, to: object = None) -> None:  # noqa: ANN001
    await asyncio.wait_for((await client.send(body, to)).acked, 10)


async def _until(predicate, timeout: float = 20.0) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("the windows did not reach the expected state")
        await asyncio.sleep(0.02)


async def _save(widget, name: str) -> None:  # noqa: ANN001
    # Let Qt lay out and paint through the event loop; calling processEvents() from inside a
    # coroutine would re-enter the asyncio loop that qasync runs on Qt's.
    for _ in range(5):
        await asyncio.sleep(0.02)
    path = OUT / name
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"wrote {path.relative_to(ROOT)}")


async def _scenario(server, settings) -> None:  # noqa: ANN001
    from client.core.conversations import PUBLIC
    from client.core.endpoints import Endpoints
    from client.qt.app import App
    from tests.integration.system import System

    system = server.system
    endpoints = Endpoints.resolve(system.auth_url, system.gateway_url, system.ca_path)
    alice = await _user(endpoints, "alice")
    bob = await _user(endpoints, "bob")
    carol = await _user(endpoints, "carol")
    await _say(bob, "Morning all! Stand-up in ten minutes?")
    await _say(carol, "On my way ☕ — can someone share the notes from Friday?")
    await _say(alice, "Sure, posting them now.")
    await _say(bob, "Thanks! Also: the release build is green. Long messages wrap inside their bubble, "
                    "so nobody has to scroll sideways to read them.")
    await _say(bob, "Hey Alice, do you have a minute after the stand-up?", to=alice.me.id)
    await _say(alice, "Of course. Is it about the TLS certificates?", to=bob.me.id)
    await _say(bob, "Yes: the dev CA expires next year, let's plan the rotation.", to=alice.me.id)
    await alice.close()

    app = App(settings, server=system.auth_url, gateway=system.gateway_url, ca=system.ca_path, enable_audio=False)
    app.start()
    app.login.username.setText("alice")
    app.login.password.setText(PASSWORD)
    app.login.resize(420, 260)
    await _save(app.login, "login.png")
    app.login.login_button.click()
    await _until(lambda: app.chat is not None or bool(app.login.error.text()))
    if app.chat is None:
        raise RuntimeError(f"login failed: {app.login.error.text()}")
    window = app.chat.window
    window.resize(900, 560)
    await _say(carol, "Notes are in the wiki, thanks Alice!")
    await _say(bob, "A pasted link breaks only where it must: "
                    "https://example.org/a/very/long/path/that/does/not/fit/on/one/line/of/the/bubble")
    await _until(lambda: len(app.chat.messages.bodies()) == 6)
    await _save(window, "public.png")
    window.select_conversation(bob.me.id)
    await _until(lambda: len(app.chat.messages.bodies()) == 3)
    await _save(window, "private.png")
    await _room(app, window, alice_id=app.chat.session.user.id, bob=bob, carol=carol)
    window.select_conversation(PUBLIC)
    await server.run(System.stop_gateway)
    await _until(lambda: window.status.text().startswith("Reconnecting"))
    window.input.setPlainText("Running five minutes late — start without me.")
    window.input.submit()
    await _until(lambda: len(app.chat.messages.pending()) == 1)
    await _save(window, "pending.png")
    await app.shutdown()
    await server.run(System.start_gateway)
    await bob.close()
    await carol.close()


async def _room(app, window, *, alice_id: int, bob, carol) -> None:  # noqa: ANN001
    from client.core.conversations import Room
    from client.core.rooms import Rooms

    bobs, carols = Rooms(bob), Rooms(carol)
    room = await bobs.create("Release 2.0", "ship it on Friday")
    await bobs.invite(room.id, carol.me.id)
    await bobs.invite(room.id, alice_id)
    await carols.refresh()
    await carols.join(room.id)
    rooms = app.chat.rooms
    await _until(lambda: room.id in rooms.rooms.rooms)
    await rooms.join(room.id)
    await _say(bob, "Welcome both! The checklist is pinned in the wiki.", to=Room(room.id))
    await _say(carol, "I'll take the changelog.", to=Room(room.id))
    other = await bobs.create("Lunch club", open=True)
    await bobs.invite(other.id, alice_id)
    await _until(lambda: len(rooms.rooms.rooms) == 2)
    await _until(lambda: "I'll take the changelog." in app.chat.messages.bodies())
    await _save(window, "room.png")


def main() -> int:
    import qasync

    from chase.tls import ensure_dev_certs
    from client.qt.qt import QApplication, QSettings
    from tests.gui.server_thread import ServerThread

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chase-screens-") as tmp:
        work = Path(tmp)
        ensure_dev_certs(work / "certs")
        server = ServerThread(f"sqlite+aiosqlite:///{work / 'chase.db'}", work / "certs")
        server.start()
        qt_app = QApplication.instance() or QApplication(["chase-screenshots"])
        loop = qasync.QEventLoop(qt_app)
        asyncio.set_event_loop(loop)
        settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
        try:
            with loop:
                loop.run_until_complete(asyncio.wait_for(_scenario(server, settings), 120))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
