"""Wires end-to-end encryption (client.core.e2ee) into the main window without the window
knowing: an :class:`~client.qt.e2ee_widgets.EncryptionBar` under the conversation title that
follows the selected conversation, the safety-number screen and the recovery-key set-up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from chase.logging import get_logger
from client.core.conversations import PUBLIC, Room
from client.core.e2ee.manager import E2EE
from client.core.errors import ClientError
from client.qt.e2ee_widgets import EncryptionBar, RecoveryKeyDialog, SafetyNumberDialog
from client.qt.qt import QDialog, QObject

log = get_logger(__name__)


class E2EEController(QObject):
    def __init__(self, e2ee: E2EE, window: Any, name_of: Callable[[int], str]) -> None:  # noqa: ANN401 - MainWindow
        super().__init__()
        self.e2ee = e2ee
        self.window = window
        self._name_of = name_of
        self._tasks: set[asyncio.Task[Any]] = set()
        self.bar = EncryptionBar()
        layout = window.title.parentWidget().layout()
        layout.insertWidget(layout.indexOf(window.title) + 1, self.bar)
        window.conversation_selected.connect(lambda _conversation: self.refresh())
        self.bar.verify_requested.connect(lambda: self._spawn(self.compare_safety_number()))
        self.bar.recovery_requested.connect(lambda: self._spawn(self.set_up_recovery()))
        #: Dialogs open now (tests find them here); run modeless so the event loop goes on.
        self.dialog: QDialog | None = None
        self.refresh()

    def _spawn(self, coroutine: Any) -> None:  # noqa: ANN401
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def refresh(self) -> None:
        conversation = self.window.current_conversation
        if conversation == PUBLIC or conversation is None:
            self.bar.show_public()
        elif isinstance(conversation, Room):
            self.bar.show_room()
        else:
            self.bar.show_private(self._name_of(conversation), verified=self.e2ee.is_verified(conversation))

    async def compare_safety_number(self) -> None:
        conversation = self.window.current_conversation
        if conversation is None or isinstance(conversation, Room):
            return
        try:
            number = await self.e2ee.safety_number(conversation)
        except ClientError as exc:
            self.window.show_notice(exc.message)
            return
        dialog = SafetyNumberDialog(self.window, self._name_of(conversation), number)
        dialog.accepted.connect(lambda: self._spawn(self._mark_verified(conversation, number)))
        self._show(dialog)

    async def _mark_verified(self, conversation: int, number: str) -> None:
        if not await self.e2ee.verify(conversation, number):
            self.bar.show_private(self._name_of(conversation), verified=False, changed=True)
            return
        self.refresh()

    async def set_up_recovery(self) -> None:
        try:
            recovery_key = await self.e2ee.setup_backup()
        except ClientError as exc:
            self.window.show_notice(exc.message)
            return
        self._show(RecoveryKeyDialog(self.window, recovery_key))

    def _show(self, dialog: QDialog) -> None:
        self.dialog = dialog
        dialog.finished.connect(lambda _result: setattr(self, "dialog", None))
        dialog.open()


__all__ = ["E2EEController"]
