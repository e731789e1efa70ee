"""The password rule, one place for the auth service and every client.

A new password must be:

- at least :data:`MIN_CHARS` (8) characters: ASVS 5.0 requirement 6.2.1;
- at most :data:`MAX_CHARS` (128) characters (every one counts: the service pre-hashes
  before bcrypt, so its 72-byte limit truncates nothing); ASVS 5.0 6.2.9 asks for at least 64;
- not one of the 10,000 most common passwords (``data/common-passwords.txt``, compared
  ignoring letter case): ASVS 5.0 requirement 6.2.4;
- not the username itself.

Why 8 and not 15: together with the common-password list and the login throttle (which
makes online guessing slow per account and per client), 8 is what ASVS level 1 and 2 ask; a
longer minimum mostly pushes people towards ``Password123456``-style padding, which the list
does not catch either. Passphrases are welcome: spaces and any Unicode count.

Pure functions and one small file read on first use: no I/O at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

MIN_CHARS = 8
MAX_CHARS = 128
RULE = (
    f"{MIN_CHARS} to {MAX_CHARS} characters (any Unicode, spaces too); not one of the 10,000 most common "
    "passwords, and not the username."
)


@dataclass(frozen=True)
class Problem:
    #: Stable: ``too_short``, ``too_long``, ``too_common``, ``same_as_username``.
    code: str
    message: str


@cache
def common_passwords() -> frozenset[str]:
    """The refused passwords, lower-cased (read once, then kept)."""
    text = resources.files("chase").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def problem(password: str, username: str | None = None) -> Problem | None:
    """What is wrong with ``password`` as a new password, or None when it is acceptable."""
    if len(password) < MIN_CHARS:
        return Problem("too_short", f"A password needs at least {MIN_CHARS} characters.")
    if len(password) > MAX_CHARS:
        return Problem("too_long", f"A password can be at most {MAX_CHARS} characters.")
    if password.lower() in common_passwords():
        return Problem("too_common", "This password is one of the most common ones: choose another.")
    if username is not None and password.lower() == username.lower():
        return Problem("same_as_username", "The password must not be the username.")
    return None
