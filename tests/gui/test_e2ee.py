"""End-to-end encryption in the desktop client: the encrypted and verified states, the safety
number screen, and the recovery-key set-up, against a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from client.core.backoff import BackoffPolicy
from client.core.conversations import PUBLIC
from client.core.e2ee.setup import open_e2ee
from client.core.session import chat_client, open_api
from client.qt.e2ee_widgets import PUBLIC_TEXT, RecoveryKeyDialog, SafetyNumberDialog
from client.qt.qt import Qt
from tests.gui.conftest import run
from tests.gui.helpers import endpoints, log_in, make_app
from tests.helpers import wait_until
from tests.integration.system import PASSWORD, System


def test_encrypted_then_verified_and_the_recovery_key(qloop: asyncio.AbstractEventLoop, qtbot: Any, system: System,
                                                     settings: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        api = open_api(endpoints(system))
        await api.register("bob", PASSWORD)
        session = await api.login("bob", PASSWORD)
        bob_e2ee = await open_e2ee(api, session, system.auth_url, passphrase="bob's vault", data_dir=tmp_path / "bob")
        bob = chat_client(endpoints(system), session, policy=BackoffPolicy(base=0.05, cap=0.3), e2ee=bob_e2ee)
        await bob.start()
        app = make_app(system, settings, data_dir=tmp_path / "alice")
        await log_in(app, qtbot, "alice", register=True)
        chat, ui = app.chat, app.e2ee_ui
        alice_id = chat.session.user.id
        assert ui.bar.state.text() == PUBLIC_TEXT
        # An encrypted message from bob is read in the desktop client.
        await (await bob.send("for your eyes only", to=alice_id)).acked
        await wait_until(lambda: chat.conversations.unread(session.user.id) == 1)
        chat.window.select_conversation(session.user.id)
        await wait_until(lambda: chat.messages.bodies() == ["for your eyes only"])
        assert "End-to-end encrypted. Not verified" in ui.bar.state.text()
        # The safety number screen shows what bob sees; "They match" marks it verified.
        qtbot.mouseClick(ui.bar.verify_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: isinstance(ui.dialog, SafetyNumberDialog))
        shown = " ".join(ui.dialog.number.text().split())
        assert shown == await bob_e2ee.safety_number(alice_id)
        qtbot.mouseClick(ui.dialog.match_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: ui.bar.state.text().startswith("✔ Verified"))
        # Replying from the desktop goes out encrypted and bob reads it.
        qtbot.keyClicks(chat.window.input, "verified reply")
        qtbot.keyClick(chat.window.input, Qt.Key.Key_Return)
        await wait_until(lambda: "verified reply" in [m.body for m in bob.store.messages(alice_id)])
        # The recovery key is shown once and cannot be dismissed before it was written down.
        qtbot.mouseClick(ui.bar.recovery_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: isinstance(ui.dialog, RecoveryKeyDialog))
        dialog = ui.dialog
        assert len(dialog.key.text().split()) == 13 and not dialog.done_button.isEnabled()
        dialog.reject()
        assert dialog.isVisible()
        dialog.confirm.setChecked(True)
        qtbot.mouseClick(dialog.done_button, Qt.MouseButton.LeftButton)
        await wait_until(lambda: ui.dialog is None)
        chat.window.select_conversation(PUBLIC)
        assert ui.bar.state.text() == PUBLIC_TEXT
        await bob.close()
        await api.aclose()
        await app.shutdown()

    run(qloop, scenario(), timeout=90)
