"""Notifications: sender always, the text only if allowed, one chime and one notification per
burst, mute per conversation and do-not-disturb kept per account."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from client.core.conversations import PUBLIC
from client.qt.account_prefs import AccountPrefs
from client.qt.notifier import Notifier, app_icon
from client.qt.qt import QSettings
from client.qt.sound import Chime
from tests.gui.conftest import run
from tests.gui.helpers import close_all, log_in, make_app, other_user
from tests.helpers import wait_until
from tests.integration.system import System


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_one_chime_and_one_notification(qapp: Any, tmp_path: Path) -> None:
    clock = FakeClock()
    chime = Chime(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), enable_audio=False)
    notifier = Notifier(chime, clock=clock, quiet=3.0, use_tray=False)
    assert notifier.news(7, "bob", "bob", "first", previews=True)
    for n in range(299):
        clock.now += 0.5  # messages keep coming, each within the quiet time of the one before
        assert not notifier.news(7, "bob", "bob", f"more {n}", previews=True)
    assert chime.requests == 1 and len(notifier.shown) == 1
    clock.now += 3.5  # quiet for longer than the burst gap: the next message is news again
    assert notifier.news(None, "All", "carol", "a new topic\nwith  lines", previews=False)
    assert chime.requests == 2
    assert [(n.title, n.text) for n in notifier.shown] == [("bob", "first"), ("carol in All", "New message")]


def test_the_unread_badge(qapp: Any, tmp_path: Path) -> None:
    chime = Chime(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), enable_audio=False)
    notifier = Notifier(chime)
    notifier.set_unread(12)
    assert notifier.tray is not None and notifier.tray.toolTip() == "ChaSe — 12 unread"
    assert app_icon(12).pixmap(64, 64).toImage() != app_icon(0).pixmap(64, 64).toImage()
    notifier.set_unread(0)
    assert notifier.tray.toolTip() == "ChaSe"


def test_muting_a_conversation_is_kept_for_the_account_only(
        qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System, settings: Any) -> None:
    async def scenario() -> tuple[int, int]:
        bob = await other_user(system, "bob")
        carol = await other_user(system, "carol")
        app = make_app(system, settings)
        app.notifier.quiet = 0.0
        await log_in(app, qtbot, "alice", register=True)
        chat = app.chat
        alice_id = chat.session.user.id
        chat.window.select_conversation(bob.me.id)
        chat.window.mute_conversation_action.trigger()  # Notifications > Mute this conversation
        assert chat.prefs.muted(bob.me.id) and not chat.prefs.muted(PUBLIC)
        chat.window.select_conversation(PUBLIC)
        await (await bob.send("muted chat", to=alice_id)).acked
        await wait_until(lambda: chat.conversations.unread(bob.me.id) == 1)
        assert app.notifier.shown == []  # counted, not announced
        await (await carol.send("not muted", to=alice_id)).acked
        await wait_until(lambda: len(app.notifier.shown) == 1)
        assert app.notifier.shown[0].title == "carol"
        # Previews off: who wrote, never what.
        chat.window.previews_action.trigger()
        await (await carol.send("secret plans", to=alice_id)).acked
        await wait_until(lambda: len(app.notifier.shown) == 2)
        assert app.notifier.shown[1].text == "New message"
        await close_all(app, bob, carol)
        return alice_id, bob.me.id

    alice_id, bob_id = run(qloop, scenario())
    alice = AccountPrefs(settings, system.auth_url, alice_id)
    assert alice.muted(bob_id) and not alice.previews
    other_account = AccountPrefs(settings, system.auth_url, alice_id + 1)
    assert not other_account.muted(bob_id) and other_account.previews and not other_account.do_not_disturb


def test_a_muted_room_is_kept_for_the_account(qapp: Any, tmp_path: Path) -> None:
    from client.core.conversations import Room
    from client.qt.account_prefs import KeptMutes

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    mutes = KeptMutes(AccountPrefs(settings, "https://chat.example.org", 7))
    mutes.add(Room(5))
    mutes.add(Room(9))
    mutes.discard(Room(9))
    settings.sync()
    again = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    assert KeptMutes(AccountPrefs(again, "https://chat.example.org", 7)) == {Room(5)}
    assert KeptMutes(AccountPrefs(again, "https://chat.example.org", 8)) == set()
