"""Coroutines a controller starts from Qt signals, and what happens when one fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from chase.logging import get_logger
from client.core.errors import ClientError
from client.qt.wording import plain_words

log = get_logger(__name__)


class UiTasks:
    """The tasks one controller owns: a :class:`ClientError` ends as a notice in plain words,
    anything else is logged as ``event``; :meth:`cancel_all` when the controller goes away."""

    def __init__(self, notice: Callable[[str], None], event: str) -> None:
        self._notice = notice
        self._event = event
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, ClientError):
            self._notice(plain_words(error))
        elif error is not None:
            log.error(self._event, error=repr(error))
