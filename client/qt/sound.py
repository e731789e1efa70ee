"""The notification sound: a short chime generated with the standard library, played by Qt.

Whether to chime is decided elsewhere (:func:`client.core.notify.should_notify`, the account's
mute and do-not-disturb choices, one chime per burst in :mod:`client.qt.notifier`); this
module only plays and counts requests (tests read :attr:`Chime.requests`). With no audio
device, or no QtMultimedia, :meth:`Chime.request` still counts and plays nothing: the app
never fails for lack of sound.
"""

from __future__ import annotations

import math
import struct
import tempfile
import wave
from pathlib import Path

from chase.logging import get_logger
from client.qt.qt import QObject, QSettings, QUrl, load_multimedia

log = get_logger(__name__)

ASSETS = Path(__file__).with_name("assets")
CHIME_FILE = "chime.wav"
RATE = 44_100


def write_chime(path: Path) -> Path:
    """Write a 0.35 s two-note chime (E6, then A6 from 0.12 s, both fading) as 16-bit mono WAV."""
    notes = ((1318.5, 0.0), (1760.0, 0.12))  # (frequency in Hz, start in seconds)
    frames = bytearray()
    for i in range(int(RATE * 0.35)):
        t = i / RATE
        sample = sum(0.45 * math.sin(2 * math.pi * f * (t - s)) * math.exp(-9 * (t - s))
                     for f, s in notes if t >= s)
        sample *= min(1.0, t / 0.005)  # a 5 ms fade-in avoids a click at the start
        frames += struct.pack("<h", int(max(-1.0, min(1.0, sample)) * 32000))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(frames))
    return path


def chime_path() -> Path:
    """The chime file, generated on first use (in the package, or a temp dir if read-only)."""
    path = ASSETS / CHIME_FILE
    if path.exists():
        return path
    try:
        return write_chime(path)
    except OSError:
        return write_chime(Path(tempfile.gettempdir()) / "chase" / CHIME_FILE)


class Chime(QObject):
    def __init__(self, settings: QSettings, *, enable_audio: bool = True) -> None:
        super().__init__()
        self._settings = settings
        #: How many times a chime was asked for (played or not): what tests observe.
        self.requests = 0
        self._effect = self._load() if enable_audio else None

    def _load(self) -> object | None:
        multimedia = load_multimedia()
        if multimedia is None or not multimedia[0].audioOutputs():
            log.info("sound.unavailable")
            return None
        try:
            effect = multimedia[1](self)
            effect.setSource(QUrl.fromLocalFile(str(chime_path())))
            effect.setVolume(0.6)
            return effect
        except Exception:  # any audio back-end trouble: stay silent, never crash
            log.warning("sound.load_failed", exc_info=True)
            return None

    @property
    def audible(self) -> bool:
        """Whether a sound can actually be heard on this machine."""
        return self._effect is not None

    def request(self) -> None:
        """Play the chime once (if there is audio); the caller has decided it should sound."""
        self.requests += 1
        if self._effect is not None:
            try:
                self._effect.play()  # type: ignore[attr-defined]
            except Exception:
                log.warning("sound.play_failed", exc_info=True)

