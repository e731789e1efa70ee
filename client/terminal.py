"""Text from other people, made safe to write to a terminal.

A message body or a name is written by someone else; a terminal obeys control characters in
it: ESC starts sequences that move the cursor, rewrite lines, set the window title or, with
OSC 52, write the clipboard; CR returns to the start of the line so a forged line can cover
the real one; C1 controls (U+0080-U+009F) are ESC sequences in one character on many
terminals; bidirectional overrides reorder what is shown. :func:`visible` shows every such
character as a visible stand-in instead, so what is printed is exactly what was sent, and
nothing in it acts:

- C0 controls and DEL as their Unicode Control Pictures: ESC as ``␛``, CR as ``␍``, BEL as
  ``␇``, DEL as ``␡`` (a newline is kept only when the caller asks, for multi-line bodies);
- C1 controls, bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C)
  and the line and paragraph separators as ``<U+XXXX>``.

Joiners and variation selectors stay: emoji are made of them, and they move no cursor.
"""

from __future__ import annotations

_BIDI_AND_BREAKS = frozenset(
    [0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def _stand_in(code: int) -> str:
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return f"<U+{code:04X}>"


def _unsafe(code: int) -> bool:
    return code < 0x20 or 0x7F <= code <= 0x9F or code in _BIDI_AND_BREAKS


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as a visible stand-in (see the module
    docstring); with ``keep_newlines``, ``\\n`` stays a line break."""
    out = []
    for char in text:
        code = ord(char)
        if char == "\n" and keep_newlines:
            out.append(char)
        elif _unsafe(code):
            out.append(_stand_in(code))
        else:
            out.append(char)
    return "".join(out)
