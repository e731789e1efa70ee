"""The desktop client in a real window under Xvfb, driven with xdotool (see real_window.py).

Needs Xvfb and xdotool (``deploy/install-system-deps.sh`` installs them). Without them the
tests are skipped with the reason, except under CI=true, where they must run.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("real_window.py")
SCREEN = "1280x800x24"


def _missing() -> str | None:
    tools = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if not tools:
        return None
    return f"{' and '.join(tools)} not installed: sudo bash deploy/install-system-deps.sh"


@pytest.fixture
def display() -> Iterator[str]:
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    read, write = os.pipe()
    # -displayfd: the server picks a free display and writes its number when it is ready.
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", SCREEN, "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 30)
        number = os.read(read, 16).decode().strip() if ready else ""
        if not number:
            raise RuntimeError("Xvfb did not start within 30 s")
        yield f":{number}"
    finally:
        os.close(read)
        xvfb.terminate()
        try:
            xvfb.wait(10)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait(10)


def _drive(display: str, out: Path, *args: str, scale: str = "1") -> None:
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "QT_SCALE_FACTOR": scale,
           "XDG_CONFIG_HOME": str(out / "config"), "XDG_DATA_HOME": str(out / "share"),
           "QT_LOGGING_RULES": "qt.multimedia.*=false;qt.qpa.*=false"}
    env.pop("QT_QPA_PLATFORMTHEME", None)
    result = subprocess.run([sys.executable, str(DRIVER), str(out), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    report = [line for line in result.stdout.splitlines() if line.startswith(("ok", "FAIL", "all", "FAILED"))]
    assert result.returncode == 0, f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}\nscreenshots in {out}"
    assert report[-1] == "all scenarios passed", report


def test_a_person_logs_in_keeps_drafts_gets_notified_scrolls_reads_in_the_dark_and_in_a_room(
        display: str, tmp_path: Path) -> None:
    _drive(display, tmp_path)
    for name in ("scrolled-up", "dark", "light", "room-switcher", "room-light", "room-dark"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_usable_at_double_scale(display: str, tmp_path: Path) -> None:
    _drive(display, tmp_path, "--scale-check", scale="2")
