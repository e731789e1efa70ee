"""What the client keeps on this computer per account: the unsent outbox and the sync cursor.

Unsent messages survive logout, closing the app and restarts: they are written to a small JSON
file (one per server and account, under :func:`default_data_dir`) at every change, and resent
under their original ``client_msg_id`` at the next login, so a message the server stored just
before the drop is still stored only once. The sync cursor is kept next to them so the next
login fetches everything that arrived meanwhile.

The file holds message bodies (the user's own, not yet sent) but never a token or password. It
is replaced atomically (write, fsync, rename), so a crash leaves the old or the new version. A
file that cannot be read is set aside (``.broken``) rather than trusted or silently lost.

One client at a time owns an account's file (an advisory lock, :meth:`LocalState.acquire`,
where the platform has ``fcntl``): a second client of the same account on this computer runs
without one rather than overwrite the first one's outbox.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chase.logging import get_logger
from chase.schemas import MAX_ID, ClientMsgId, Encrypted, RoomId, UserId

log = get_logger(__name__)

#: Overrides where the client keeps its files (tests point it at a temporary directory).
DATA_DIR_ENV = "CHASE_CLIENT_DATA_DIR"


def default_data_dir(environ: dict[str, str] | None = None) -> Path:
    """The per-user data directory: $CHASE_CLIENT_DATA_DIR, else the platform's usual place."""
    env = os.environ if environ is None else environ
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV])
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "win32":
        return Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local") / "chase"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "chase"
    return Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "chase"


def account_file(data_dir: Path, server_url: str, user_id: int) -> Path:
    """The state file of one account on one server (ids are per server, so both name it)."""
    parts = urlsplit(server_url)
    server = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{parts.hostname or 'local'}_{parts.port or 443}")
    return data_dir / "accounts" / f"{server}-user{user_id}.json"


class SavedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_msg_id: ClientMsgId
    recipient_id: UserId | None
    #: Empty for an end-to-end encrypted message: its text stays in the encrypted key vault.
    body: str
    queued_at: datetime
    #: A group room (then ``recipient_id`` is None).
    room_id: RoomId | None = None
    ciphertext: Encrypted | None = None


class _Saved(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    user_id: UserId
    cursor: Annotated[int, Field(ge=0, le=MAX_ID)] | None = None
    outbox: list[SavedMessage] = []


@dataclass
class LocalState:
    """One account's file. :meth:`load` once at login; :meth:`save` after every change."""

    path: Path
    user_id: int
    cursor: int | None = None
    outbox: list[SavedMessage] = field(default_factory=list)
    _lock: IO[bytes] | None = field(default=None, repr=False, compare=False)

    def acquire(self) -> bool:
        """Take this account's file for this client; False when another client holds it."""
        try:
            import fcntl
        except ImportError:  # no advisory locks here (Windows): one client per account, please
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_suffix(".lock").open("ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return False
        self._lock = lock
        return True

    def release(self) -> None:
        """Let another client take the file (closing the lock file releases the lock)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def load(self) -> LocalState:
        """Read the file (nothing there: an empty state); returns self."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self
        except OSError as exc:
            log.warning("client.local_state_unreadable", error=type(exc).__name__)
            return self
        try:
            saved = _Saved.model_validate_json(raw)
            if saved.user_id != self.user_id:
                raise ValueError("the file belongs to another account")
        except (ValidationError, ValueError):
            broken = self.path.with_suffix(".broken")
            log.warning("client.local_state_broken", kept_as=broken.name)
            os.replace(self.path, broken)
            return self
        self.cursor, self.outbox = saved.cursor, list(saved.outbox)
        return self

    def save(self) -> None:
        """Write the state; an I/O error is logged, never raised (the session goes on)."""
        saved = _Saved(user_id=self.user_id, cursor=self.cursor, outbox=self.outbox)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(saved.model_dump_json())
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("client.local_state_not_saved", error=type(exc).__name__)

