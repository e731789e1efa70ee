"""Text rules shared by the services and the clients: what counts as blank, what is not text.

Pure functions of ``unicodedata`` only, so the gateway, the persistence worker and the clients
apply exactly the same rule.

- :func:`is_blank`: a message body with nothing anyone can see. Whitespace (``str.isspace``),
  format characters (Unicode category ``Cf``: zero-width space, zero-width joiners, the byte
  order mark, bidirectional marks...), control characters (``Cc``) and a few letters that
  render as nothing (Hangul fillers, the braille blank, the combining grapheme joiner) are
  all invisible; a body made only of them is refused as empty.
- :func:`has_lone_surrogate`: a string that cannot be encoded as UTF-8 (JSON's ``\\ud800``
  escapes decode to these in Python). Such input is refused as invalid, never stored.
"""

from __future__ import annotations

import unicodedata

#: Code points that are letters or marks by category but show as nothing.
INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp"})


def is_invisible(char: str) -> bool:
    return char.isspace() or char in INVISIBLE or unicodedata.category(char) in _INVISIBLE_CATEGORIES


def is_blank(text: str) -> bool:
    """True when ``text`` has no character anyone would see (empty included)."""
    return all(is_invisible(char) for char in text)


def has_lone_surrogate(text: str) -> bool:
    """True when ``text`` holds a UTF-16 surrogate on its own, so it is not valid Unicode text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
