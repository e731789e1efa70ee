"""The desktop client in a real window, driven as a person drives it: run under an X server
(Xvfb) by ``test_real_window.py``, never collected by pytest itself.

The app runs here on Qt's xcb platform with the whole system on a thread (SQLite, the
in-process bus, throwaway certificates). Every key press and click goes through the X server
(``xdotool``, XTEST), every picture is taken from the X screen, and the app's own state is read
to check what the person would see. Usage::

    python tests/gui/real_window.py OUTPUT_DIR [--scale-check]

Exit status 0 when every scenario passed; what failed is printed, and the screenshots stay in
OUTPUT_DIR.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PASSWORD = "correct horse battery staple"
STEP = 20.0  # seconds any one thing may take


async def until(predicate: Callable[[], bool], what: str, timeout: float = STEP) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.03)


async def xdotool(*args: str) -> None:
    process = await asyncio.create_subprocess_exec("xdotool", *args)
    code = await asyncio.wait_for(process.wait(), STEP)
    if code != 0:
        raise AssertionError(f"xdotool {' '.join(args)} failed ({code})")


async def type_text(text: str) -> None:
    await xdotool("type", "--delay", "12", text)
    await asyncio.sleep(0.1)


async def keys(*names: str) -> None:
    await xdotool("key", "--delay", "40", *names)
    await asyncio.sleep(0.1)


async def focus(widget: Any) -> None:
    window = widget.window()
    window.activateWindow()
    await xdotool("windowfocus", "--sync", str(int(window.winId())))
    await until(window.isActiveWindow, "the window has the keyboard")


def device_point(widget: Any, point: Any) -> tuple[int, int]:
    """``point`` in ``widget`` as X screen pixels (what xdotool and a screenshot use)."""
    ratio = widget.devicePixelRatioF()
    top_left = widget.mapToGlobal(point)
    return round(top_left.x() * ratio), round(top_left.y() * ratio)


async def click(widget: Any, point: Any = None, button: str = "1", times: int = 1) -> None:
    x, y = device_point(widget, point if point is not None else widget.rect().center())
    await xdotool("mousemove", "--sync", str(x), str(y))
    await xdotool("click", "--repeat", str(times), "--delay", "40", button)
    await asyncio.sleep(0.15)


def screenshot(out: Path, name: str) -> Any:
    from client.qt.qt import QGuiApplication

    image = QGuiApplication.primaryScreen().grabWindow(0).toImage()
    image.save(str(out / f"{name}.png"))
    return image


class Scenario:
    def __init__(self, server: Any, settings: Any, out: Path) -> None:
        self.server, self.settings, self.out = server, settings, out
        self.system = server.system
        self.app: Any = None
        self.bob: Any = None
        self.api: Any = None

    async def user(self, name: str) -> Any:
        from client.core.backoff import BackoffPolicy
        from client.core.e2ee.setup import open_e2ee
        from client.core.endpoints import Endpoints
        from client.core.session import chat_client, open_api

        endpoints = Endpoints.resolve(self.system.auth_url, self.system.gateway_url, self.system.ca_path)
        # Encryption on, as another desktop runs it; the API stays open for its key requests.
        self.api = api = open_api(endpoints)
        await api.register(name, PASSWORD)
        session = await api.login(name, PASSWORD)
        keys = await open_e2ee(api, session, self.system.auth_url, passphrase=f"{name}'s vault")
        client = chat_client(endpoints, session, policy=BackoffPolicy(base=0.05, cap=0.3, max_attempts=60),
                             e2ee=keys)
        await client.start()
        return client

    async def say(self, client: Any, body: str, to: int | None = None) -> None:
        await asyncio.wait_for((await client.send(body, to)).acked, STEP)

    async def log_in(self) -> None:
        from client.qt.app import App

        self.app = App(self.settings, server=self.system.auth_url, gateway=self.system.gateway_url,
                       ca=self.system.ca_path, enable_audio=False)
        self.app.start()
        login = self.app.login
        await until(login.isVisible, "the login window")
        await focus(login)
        # Nothing remembered: the cursor is in Username. A new person registers (the button).
        await type_text("alice")
        await keys("Tab")
        await type_text(PASSWORD)
        await click(login.register_button)
        await until(lambda: self.app.chat is not None or bool(login.error.text()), "the main window")
        assert self.app.chat is not None, login.error.text()
        window = self.app.chat.window
        await until(window.isVisible, "the main window shown")
        await focus(window)
        assert window.focusWidget() is window.input, f"focus is on {window.focusWidget()!r}"

    async def drafts(self) -> None:
        from client.core.conversations import PUBLIC

        chat = self.app.chat
        window, bob = chat.window, self.bob
        me = chat.session.user.id
        await keys("ctrl+k")
        await until(window.switcher.isVisible, "the conversation switcher")
        await type_text("bo")
        await keys("Return")
        await until(lambda: chat._viewing == bob.me.id, "bob's conversation")
        await type_text("draft for bob")
        await keys("ctrl+k")
        await until(window.switcher.isVisible, "the conversation switcher")
        await keys("Escape")  # Escape leaves the search, nothing changes
        await until(lambda: not window.switcher.isVisible(), "the switcher closed")
        assert chat._viewing == bob.me.id
        await keys("ctrl+k")
        await type_text("all")
        await keys("Return")
        await until(lambda: chat._viewing is PUBLIC, "the public room")
        assert window.input.toPlainText() == "", "the room has its own (empty) box"
        await type_text("hello everyone")
        await keys("Return")
        await until(lambda: [m.body for m in bob.store.messages(PUBLIC)] == ["hello everyone"], "bob got it")
        await keys("ctrl+k")
        await type_text("bob")
        await keys("Return")
        await until(lambda: window.input.toPlainText() == "draft for bob", "bob's draft back")
        await keys("Return")
        await until(lambda: [m.body for m in bob.store.messages(me)] == ["draft for bob"], "bob got his draft")
        assert [m.body for m in bob.store.messages(PUBLIC)] == ["hello everyone"]

    async def notification(self) -> None:
        chat = self.app.chat
        await keys("ctrl+k")
        await type_text("all")
        await keys("Return")
        before = len(self.app.notifier.shown)
        await self.say(self.bob, "are you free at three?", to=chat.session.user.id)
        await until(lambda: len(self.app.notifier.shown) == before + 1, "a notification")
        shown = self.app.notifier.shown[-1]
        assert (shown.title, shown.text) == ("bob", "are you free at three?"), shown
        await until(lambda: chat.window.windowTitle().startswith("(1) "), "the unread count in the title")
        toast = self.app.notifier.toast
        if toast is not None:  # no system tray on a bare X server: the app shows its own
            await until(toast.isVisible, "the notification on screen")
            screenshot(self.out, "notification")
            await click(toast)
            await until(lambda: chat._viewing == self.bob.me.id, "the click opens bob's chat")

    async def scrolling(self) -> None:
        from client.core.conversations import PUBLIC
        from client.qt.models import MessageRoles

        chat = self.app.chat
        window, view = chat.window, chat.window.chat
        for n in range(40):
            await self.say(self.bob, f"busy room {n}: " + "words to fill the line " * (n % 4 + 1))
        await keys("ctrl+k")
        await type_text("all")
        await keys("Return")
        await until(lambda: chat._viewing is PUBLIC and len(chat.messages.bodies()) == 41, "the room")
        # Forty arrived while bob's chat was open: the room opens at the first of them.
        first = next(i for i, body in enumerate(chat.messages.bodies()) if body.startswith("busy room 0:"))
        await until(lambda: view.indexAt(view.viewport().rect().topLeft()).row() == first, "at the first unread")
        assert chat.messages.index(first).data(MessageRoles.UNREAD_BREAK) is True
        await until(view.jump_button.isVisible, "the jump button")
        screenshot(self.out, "first-unread")
        await click(view.jump_button)
        bar = view.verticalScrollBar()
        await until(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), "at the newest")
        await click(view.viewport(), button="4", times=12)  # the mouse wheel, up
        await until(lambda: bar.value() < bar.maximum() - 50 and view.jump_button.isVisible(), "scrolled up")
        where = bar.value()
        for n in range(3):
            await self.say(self.bob, f"while you read {n}")
        await until(lambda: view.unseen == 3, "three new behind the button")
        assert bar.value() == where, "the reader was not moved"
        assert view.jump_button.text() == "↓  3 new"
        screenshot(self.out, "scrolled-up")
        await click(view.jump_button)
        await until(lambda: bar.value() == bar.maximum() and not view.jump_button.isVisible(), "at the newest")
        # The window shrinks and a notice appears: still at the bottom.
        window.resize(window.width() - 120, window.height() - 160)
        window.show_notice("A notice below the timeline takes some room.")
        await until(lambda: bar.value() == bar.maximum(), "still at the bottom")
        window.show_notice("")

    async def copy_text(self) -> None:
        from client.qt.models import MessageRoles
        from client.qt.qt import QApplication, QTextEdit

        view = self.app.chat.window.chat
        model = view.model()
        row = model.rowCount() - 1
        body = model.index(row, 0).data(MessageRoles.BODY)
        rect = view.visualRect(model.index(row, 0))
        await click(view.viewport(), rect.center(), times=2)  # a double click opens the text
        await until(lambda: view.findChild(QTextEdit, "message_text") is not None, "the message's text")
        await keys("ctrl+a", "ctrl+c")
        await until(lambda: QApplication.clipboard().text() == body, "the text copied")
        await keys("Escape")

    async def dark_contrast(self) -> None:
        from client.qt.chat_view import MessageDelegate
        from client.qt.models import MessageRoles
        from client.qt.qt import QColor
        from client.qt.theme import MIN_CONTRAST, Colours, ThemeChoice, contrast, luminance

        window, view = self.app.chat.window, self.app.chat.window.chat
        await focus(window)
        await keys("alt+v")        # View
        await keys("t")            # Theme
        await keys("d")            # Dark
        await until(lambda: self.app.theme.choice is ThemeChoice.DARK, "the dark theme")
        await asyncio.sleep(0.5)   # painted on the X screen
        image = screenshot(self.out, "dark")
        colours = Colours.from_palette(view.palette())
        assert luminance(colours.other_bubble) < 0.1, colours.other_bubble.name()
        delegate: MessageDelegate = view.delegate
        checked = 0
        for row in range(view.model().rowCount()):
            index = view.model().index(row, 0)
            rect = view.visualRect(index)
            if not view.viewport().rect().contains(rect) or index.data(MessageRoles.OWN):
                continue  # not fully on screen, or one's own message
            laid = delegate.layout(rect, view.font(), index)
            x0, y0 = device_point(view.viewport(), laid.body.topLeft())
            x1, y1 = device_point(view.viewport(), laid.body.bottomRight())
            bubble_pixels, far, far_contrast = 0, None, 0.0
            for y in range(y0, y1):
                for x in range(x0, x1):
                    pixel = QColor(image.pixel(x, y))
                    if pixel.rgb() == colours.other_bubble.rgb():
                        bubble_pixels += 1
                    ratio = contrast(pixel, colours.other_bubble)
                    if ratio > far_contrast:
                        far, far_contrast = pixel, ratio
            assert bubble_pixels > (x1 - x0) * (y1 - y0) // 3, "the bubble is the palette's dark colour"
            assert far_contrast >= MIN_CONTRAST, f"text {far.name() if far else None} on {colours.other_bubble.name()}"
            checked += 1
        assert checked >= 3, f"only {checked} messages checked"
        await keys("alt+v")
        await keys("t")
        await keys("l")            # Light
        await until(lambda: self.app.theme.choice is ThemeChoice.LIGHT, "the light theme")
        await asyncio.sleep(0.5)
        screenshot(self.out, "light")

    async def rooms(self) -> None:
        from client.core.conversations import Room
        from client.core.rooms import Rooms
        from client.qt.models import MessageRoles
        from client.qt.qt import QColor
        from client.qt.theme import MIN_CONTRAST, Colours, ThemeChoice, contrast

        chat = self.app.chat
        window, view, panel = chat.window, chat.window.chat, chat.rooms.panel
        bob_rooms = Rooms(self.bob)
        room = await bob_rooms.create("Project X", "launch plans")
        await bob_rooms.invite(room.id, chat.session.user.id)
        await until(lambda: panel.model.row_of(room.id) is not None, "the invitation in the rooms section")
        await focus(window)
        await click(panel.list.viewport(), panel.list.visualRect(panel.model.index(panel.model.row_of(room.id))).center())
        await until(panel.join_button.isVisible, "the Join button")
        await click(panel.join_button)
        await until(lambda: chat._viewing == Room(room.id), "the room open")
        for text in ("morning all", "the launch is on Monday"):
            await asyncio.wait_for((await self.bob.send(text, Room(room.id))).acked, STEP)
        await until(lambda: chat.messages.bodies()[-1:] == ["the launch is on Monday"], "read in the room")
        await keys("ctrl+k")
        await type_text("all")
        await keys("Return")
        await until(lambda: chat._viewing is None, "the public room")
        before = self.app.chime.requests
        await asyncio.wait_for((await self.bob.send("can you check the slides?", Room(room.id))).acked, STEP)
        await bob_rooms.update(room.id, topic="launch on Monday")  # an event: a line, not news
        await asyncio.wait_for((await self.bob.send("and the release notes", Room(room.id))).acked, STEP)
        await until(lambda: chat.rooms.model.labels()[:1] == ["# Project X  (2)"], "two unread in the room")
        assert self.app.chime.requests <= before + 2
        # Ctrl+K, "#" and part of the name: the room, opened at its first unread message.
        await keys("ctrl+k")
        await until(window.switcher.isVisible, "the switcher")
        await type_text("#proj")
        assert window.switcher.results.currentIndex().data() == "# Project X  (2)"
        screenshot(self.out, "room-switcher")
        await keys("Return")
        await until(lambda: chat._viewing == Room(room.id), "the room from the switcher")
        assert panel.current_room == room.id and window.title.text().startswith("# Project X")
        model = chat.messages
        first = model.bodies().index("can you check the slides?")
        assert model.index(first).data(MessageRoles.UNREAD_BREAK) is True
        assert chat.rooms.model.labels()[:1] == ["# Project X"]
        events = [r for r in range(model.rowCount()) if model.index(r).data(MessageRoles.EVENT)]
        assert len(events) >= 2, model.bodies()
        await asyncio.sleep(0.5)
        screenshot(self.out, "room-light")
        await keys("alt+v")
        await keys("t")
        await keys("d")
        await until(lambda: self.app.theme.choice is ThemeChoice.DARK, "the dark theme")
        await asyncio.sleep(0.5)
        image = screenshot(self.out, "room-dark")
        colours = Colours.from_palette(view.palette())
        base = view.palette().color(view.palette().ColorRole.Base)
        seen = 0
        for row in events:
            index = model.index(row, 0)
            if not view.viewport().rect().contains(view.visualRect(index)):
                continue  # not wholly on screen
            seen += 1
            laid = view.delegate.layout(view.visualRect(index), view.font(), index)
            x0, y0 = device_point(view.viewport(), laid.bubble.topLeft())
            x1, y1 = device_point(view.viewport(), laid.bubble.bottomRight())
            pixels = [QColor(image.pixel(x, y)) for y in range(y0, y1) for x in range(x0, x1)]
            assert sum(p.rgb() == base.rgb() for p in pixels) > len(pixels) // 2, "no bubble behind the line"
            assert max(contrast(p, base) for p in pixels) >= MIN_CONTRAST, "the line reads on the background"
            assert colours.system_text.rgb() != colours.text.rgb()
        assert seen >= 1, "a membership event on screen"
        await keys("alt+v")
        await keys("t")
        await keys("l")
        await until(lambda: self.app.theme.choice is ThemeChoice.LIGHT, "the light theme")

    async def at_double_scale(self) -> None:
        from client.qt.qt import QGuiApplication

        window = self.app.chat.window
        free = QGuiApplication.primaryScreen().availableGeometry()
        assert free.contains(window.frameGeometry()), (free, window.frameGeometry())
        await focus(window)
        await keys("ctrl+k")
        await until(window.switcher.isVisible, "the switcher")
        assert free.contains(window.switcher.frameGeometry())
        await keys("Escape")
        await until(lambda: not window.switcher.isVisible(), "Escape closes it")
        screenshot(self.out, "double-scale")


async def main(out: Path, scale_check: bool) -> list[str]:
    from client.qt.qt import QSettings
    from tests.gui.server_thread import ServerThread

    failures: list[str] = []
    settings = QSettings(str(out / "settings.ini"), QSettings.Format.IniFormat)
    server = ServerThread(f"sqlite+aiosqlite:///{out / 'chase.db'}", out / "certs",
                          gateway_overrides={"rate_per_second": 1000.0, "rate_burst": 1000})
    await asyncio.get_running_loop().run_in_executor(None, server.start)
    scenario = Scenario(server, settings, out)
    try:
        scenario.bob = await scenario.user("bob")
        steps = ["log_in", "at_double_scale"] if scale_check else [
            "log_in", "drafts", "notification", "scrolling", "copy_text", "dark_contrast", "rooms"]
        for step in steps:
            try:
                await asyncio.wait_for(getattr(scenario, step)(), 120)
                print(f"ok   {step}", flush=True)
            except Exception:
                failures.append(step)
                print(f"FAIL {step}\n{traceback.format_exc()}", flush=True)
                screenshot(out, f"failed-{step}")
                if step == "log_in":
                    break
    finally:
        if scenario.app is not None:
            await scenario.app.shutdown()
        if scenario.bob is not None:
            await scenario.bob.close()
        if scenario.api is not None:
            await scenario.api.aclose()
        await asyncio.get_running_loop().run_in_executor(None, server.stop)
    return failures


def run(argv: list[str]) -> int:
    import qasync

    from chase.logging import configure
    from chase.tls import ensure_dev_certs
    from client.qt.qt import QApplication

    configure("warning")
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    ensure_dev_certs(out / "certs")
    os.environ["CHASE_CLIENT_DATA_DIR"] = str(out / "data")
    qt_app = QApplication(["chase-real-window"])
    qt_app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qt_app)
    asyncio.set_event_loop(loop)
    with loop:
        failures = loop.run_until_complete(asyncio.wait_for(main(out, "--scale-check" in argv), 600))
    print("FAILED: " + ", ".join(failures) if failures else "all scenarios passed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
