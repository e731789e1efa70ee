"""What the desktop client remembers per account: drafts, muted conversations, do-not-disturb.

Kept in the app's QSettings under one group per server and account (``accounts/<server>-<id>``),
so two accounts on one computer never share a draft or a mute switch. The settings file is
the user's own configuration, like the window geometry; message drafts are the only text
from the user kept there (never a password or token).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from client.core.conversations import PUBLIC, ConversationId, Room
from client.qt.qt import QSettings

#: Longest draft kept (the server refuses longer messages anyway).
MAX_DRAFT_CHARS = 100_000


def account_group(server_url: str, user_id: int) -> str:
    """The QSettings group of one account on one server (ids are per server, so both name it)."""
    parts = urlsplit(server_url)
    server = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{parts.hostname or 'local'}_{parts.port or 443}")
    return f"accounts/{server}-user{user_id}"


def conversation_key(conversation: ConversationId) -> str:
    """A stable settings key for a conversation: ``all`` for the public room, ``user-<id>``,
    ``room-<id>``, or the conversation's own string form for any other kind."""
    if conversation is PUBLIC:
        return "all"
    if isinstance(conversation, Room):
        return f"room-{conversation.id}"
    if isinstance(conversation, int):
        return f"user-{conversation}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(conversation))


def as_bool(value: object) -> bool:
    # QSettings hands back strings from INI files on some platforms.
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return bool(value)


class AccountPrefs:
    """One account's remembered choices; every setter writes through at once."""

    def __init__(self, settings: QSettings, server_url: str, user_id: int) -> None:
        self._settings = settings
        self._group = account_group(server_url, user_id)

    def _key(self, name: str) -> str:
        return f"{self._group}/{name}"

    # --- drafts --------------------------------------------------------------------------

    def draft(self, conversation: ConversationId) -> str:
        return str(self._settings.value(self._key(f"drafts/{conversation_key(conversation)}"), "") or "")

    def set_draft(self, conversation: ConversationId, text: str) -> None:
        """Keep ``text`` as the conversation's draft (an empty or blank text removes it)."""
        key = self._key(f"drafts/{conversation_key(conversation)}")
        if text.strip():
            self._settings.setValue(key, text[:MAX_DRAFT_CHARS])
        else:
            self._settings.remove(key)

    # --- notifications -------------------------------------------------------------------

    def muted(self, conversation: ConversationId) -> bool:
        return as_bool(self._settings.value(self._key(f"muted/{conversation_key(conversation)}"), False))

    def set_muted(self, conversation: ConversationId, muted: bool) -> None:
        key = self._key(f"muted/{conversation_key(conversation)}")
        if muted:
            self._settings.setValue(key, True)
        else:
            self._settings.remove(key)

    def muted_rooms(self) -> set[int]:
        """The ids of the rooms whose notifications are muted."""
        self._settings.beginGroup(self._key("muted"))
        try:
            keys = self._settings.childKeys()
        finally:
            self._settings.endGroup()
        return {int(key[5:]) for key in keys if key.startswith("room-") and key[5:].isdigit()
                and self.muted(Room(int(key[5:])))}

    @property
    def do_not_disturb(self) -> bool:
        return as_bool(self._settings.value(self._key("do_not_disturb"), False))

    def set_do_not_disturb(self, on: bool) -> None:
        self._settings.setValue(self._key("do_not_disturb"), bool(on))

    @property
    def previews(self) -> bool:
        """Whether notifications may show the message text (off: only who wrote)."""
        return as_bool(self._settings.value(self._key("previews"), True))

    def set_previews(self, on: bool) -> None:
        self._settings.setValue(self._key("previews"), bool(on))

    def sync(self) -> None:
        self._settings.sync()


class KeptMutes(set):  # type: ignore[type-arg]
    """The set of muted conversations the rooms panel edits, written through to the account's
    settings, so a muted room stays muted after a restart."""

    def __init__(self, prefs: AccountPrefs) -> None:
        super().__init__(Room(room_id) for room_id in prefs.muted_rooms())
        self._prefs = prefs

    def add(self, conversation: ConversationId) -> None:
        super().add(conversation)
        self._prefs.set_muted(conversation, True)

    def discard(self, conversation: ConversationId) -> None:
        super().discard(conversation)
        self._prefs.set_muted(conversation, False)
