"""``make screenshots``: render the desktop client's windows to docs/images/ from a real system.

Starts the whole system in-process (embedded default: SQLite and the in-process bus, with
throwaway certificates), registers alice, bob and carol, has them exchange messages through
the real client core (the first ones dated earlier, so the timeline shows date separators),
then shows the real windows on Qt's offscreen platform and saves, in the light theme:
login.png, public.png (date separators), notification.png (a message arriving while another
conversation is open), private.png (opened at the first unread message under the "New
messages" line), room.png (a group room bob made with alice and carol in it), pending.png (a
message written while the gateway is down); and in the dark theme: login-dark.png,
public-dark.png and private-dark.png.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from datetime import timedelta
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


async def _backdate(server, message_ids: list[int], days: int) -> None:  # noqa: ANN001
    """Move messages ``days`` back in time, as if they had been written then."""
    import sqlalchemy as sa

    from chase.store.tables import messages

    async def move(system) -> None:  # noqa: ANN001
        async with system.engine.begin() as connection:
            for message_id in message_ids:
                when = (await connection.execute(sa.select(messages.c.created_at)
                                                 .where(messages.c.id == message_id))).scalar_one()
                await connection.execute(sa.update(messages).where(messages.c.id == message_id)
                                         .values(created_at=when - timedelta(days=days)))

    await server.run(move)


async def _said(client, body: str, to: int | None = None) -> int:  # noqa: ANN001
    return (await asyncio.wait_for((await client.send(body, to)).acked, 10)).message_id


async def _notification(window, toast, name: str) -> None:  # noqa: ANN001
    """The window with the notification where the desktop shows it (top right)."""
    from client.qt.qt import QPainter

    for _ in range(5):
        await asyncio.sleep(0.02)
    picture = window.grab()
    note = toast.grab()
    painter = QPainter(picture)
    painter.drawPixmap(picture.width() - note.width() - 12, 40, note)
    painter.end()
    path = OUT / name
    if not picture.save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"wrote {path.relative_to(ROOT)}")


async def _scenario(server, settings) -> None:  # noqa: ANN001
    from client.core.conversations import PUBLIC
    from client.core.endpoints import Endpoints
    from client.qt.app import App
    from client.qt.theme import ThemeChoice
    from tests.integration.system import System

    system = server.system
    endpoints = Endpoints.resolve(system.auth_url, system.gateway_url, system.ca_path)
    alice = await _user(endpoints, "alice")
    bob = await _user(endpoints, "bob")
    carol = await _user(endpoints, "carol")
    await _backdate(server, [
        await _said(bob, "Morning all! Stand-up in ten minutes?"),
        await _said(carol, "On my way ☕ — can someone share the notes from Friday?"),
    ], days=2)
    await _backdate(server, [
        await _said(alice, "Sure, here they are: https://wiki.example.org/standup/notes"),
        await _said(bob, "Thanks! Also: the release build is green. Long messages wrap inside their bubble, "
                         "so nobody has to scroll sideways to read them."),
        await _said(bob, "Hey Alice, do you have a minute after the stand-up?", to=alice.me.id),
        await _said(alice, "Of course. Is it about the TLS certificates?", to=bob.me.id),
    ], days=1)
    await alice.close()

    settings.setValue("appearance/theme", ThemeChoice.LIGHT.value)
    app = App(settings, server=system.auth_url, gateway=system.gateway_url, ca=system.ca_path, enable_audio=False)
    app.start()
    app.login.username.setText("alice")
    app.login.password.setText(PASSWORD)
    app.login.resize(440, 280)
    await _save(app.login, "login.png")
    app.theme.apply(ThemeChoice.DARK)
    await _save(app.login, "login-dark.png")
    app.theme.apply(ThemeChoice.LIGHT)
    app.login.login_button.click()
    await _until(lambda: app.chat is not None or bool(app.login.error.text()))
    if app.chat is None:
        raise RuntimeError(f"login failed: {app.login.error.text()}")
    window = app.chat.window
    window.resize(920, 620)
    await _say(carol, "Notes are in the wiki, thanks Alice!")
    await _say(bob, "A pasted link breaks only where it must, and opens with a click: "
                    "https://example.org/a/very/long/path/that/does/not/fit/on/one/line/of/the/bubble")
    await _until(lambda: len(app.chat.messages.bodies()) == 6)
    await _save(window, "public.png")
    await _say(bob, "Yes: the dev CA expires next year, let's plan the rotation.", to=alice.me.id)
    await _say(bob, "Could you draft the steps before Friday?", to=alice.me.id)
    await _until(lambda: app.chat.conversations.unread(bob.me.id) == 2 and bool(app.notifier.shown))
    toast = app.notifier.toast
    if toast is None:
        raise RuntimeError("expected the in-app notification on the offscreen platform (no system tray)")
    await _notification(window, toast, "notification.png")
    toast.hide()
    window.select_conversation(bob.me.id)
    await _until(lambda: len(app.chat.messages.bodies()) == 4)
    await _save(window, "private.png")
    app.theme.apply(ThemeChoice.DARK)
    await _save(window, "private-dark.png")
    app.theme.apply(ThemeChoice.LIGHT)
    await _room(app, window, alice_id=app.chat.session.user.id, bob=bob, carol=carol)
    app.theme.apply(ThemeChoice.DARK)
    window.select_conversation(PUBLIC)
    await _until(lambda: len(app.chat.messages.bodies()) == 6)
    await _save(window, "public-dark.png")
    app.theme.apply(ThemeChoice.LIGHT)
    await server.run(System.stop_gateway)
    await _until(lambda: window.status.text().startswith("Reconnecting"))
    window.input.setPlainText("Running five minutes late — start without me.")
    window.input.submit()
    await _until(lambda: len(app.chat.messages.pending()) == 1)
    await _save(window, "pending.png")
    app.theme.apply(ThemeChoice.SYSTEM)
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
