"""GUI tests: pytest-qt on the offscreen platform, the app on a qasync loop, a real server.

Tests here are plain (sync) functions: each builds its scenario as a coroutine and runs it
on the qasync loop with :func:`run`, so Qt events and asyncio callbacks interleave exactly as
in the real app. The server runs on its own thread (see ``server_thread.py``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("QT_LOGGING_RULES", "qt.multimedia.*=false")

import pytest  # noqa: E402


def _qt_problem() -> str | None:
    """Why Qt cannot load here (a missing system library), or None."""
    try:
        import PyQt6.QtMultimedia  # noqa: F401
        import PyQt6.QtWidgets  # noqa: F401
    except ImportError as exc:
        return f"Qt cannot load ({exc}); install its libraries: sudo bash deploy/install-system-deps.sh"
    return None


QT_PROBLEM = _qt_problem()
if QT_PROBLEM is not None and os.environ.get("CI", "").lower() != "true":
    # Locally the GUI tests are left out with the reason in the header; under CI they run
    # (and fail), since CI must never pass by skipping.
    collect_ignore_glob = ["test_*.py"]


def pytest_report_header() -> list[str]:
    return [f"gui tests left out: {QT_PROBLEM}"] if QT_PROBLEM else []


from tests.gui.server_thread import ServerThread  # noqa: E402
from tests.integration.system import System  # noqa: E402

T = TypeVar("T")

#: Generous limits so that setting up a long history is not throttled.
FAST_GATEWAY = {"rate_per_second": 1000.0, "rate_burst": 1000}


@pytest.fixture
def server(sqlite_url: str, dev_certs: Path) -> Iterator[ServerThread]:
    thread = ServerThread(sqlite_url, dev_certs, gateway_overrides=FAST_GATEWAY)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def system(server: ServerThread) -> System:
    assert server.system is not None
    return server.system


@pytest.fixture
def qloop(qapp: Any) -> Iterator[asyncio.AbstractEventLoop]:
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=False)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        loop.run_until_complete(asyncio.sleep(0))  # let cancelled tasks unwind
        asyncio.set_event_loop(None)
        loop.close()


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    from client.qt.qt import QSettings

    return QSettings(str(tmp_path / "chase.ini"), QSettings.Format.IniFormat)


def run(loop: asyncio.AbstractEventLoop, scenario: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run ``scenario`` on the qasync loop (Qt events are processed meanwhile)."""
    return loop.run_until_complete(asyncio.wait_for(scenario, timeout))
