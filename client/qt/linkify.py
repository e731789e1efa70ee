"""Where the links are in a message's plain text: only http:// and https:// ever count.

Nothing else is made clickable (no file:, javascript:, mailto: or bare host names), and the
text itself is never interpreted: a link is a range of the plain text, shown as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\"*"
_PAIRS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True)
class Link:
    start: int   # index in the text of the first character
    end: int     # index after the last one
    url: str


def _trim(url: str) -> str:
    # A sentence's punctuation after a link is not part of it; a closing bracket is only when
    # the link opened one itself (https://en.wikipedia.org/wiki/Foo_(bar)).
    while url:
        last = url[-1]
        if last in _TRAILING:
            url = url[:-1]
        elif last in _PAIRS and url.count(_PAIRS[last]) < url.count(last):
            url = url[:-1]
        else:
            break
    return url


def find_links(text: str) -> list[Link]:
    """The http(s) links in ``text``, in order."""
    links = []
    for match in _URL.finditer(text):
        url = _trim(match.group(0))
        if len(url) > len("https://") and "://" in url and url.split("://", 1)[1]:
            links.append(Link(match.start(), match.start() + len(url), url))
    return links


def is_openable(url: str) -> bool:
    """True only for an http or https address (the one rule for anything the client opens)."""
    return bool(re.match(r"^https?://[^\s]+$", url, re.IGNORECASE))
