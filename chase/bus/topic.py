"""Topic pattern matching with RabbitMQ topic-exchange semantics (pure, no I/O).

A routing key is a list of dot-separated words. In a binding pattern ``*`` stands for exactly
one word and ``#`` for zero or more words; any other word must be equal. The in-process bus
routes with this, so it must agree with RabbitMQ exactly: the contract tests run both.
"""

from __future__ import annotations

from functools import lru_cache


def _words(text: str) -> tuple[str, ...]:
    # RabbitMQ treats the empty key as zero words, so "#" matches it and "*" does not.
    return tuple(text.split(".")) if text else ()


def matches(pattern: str, routing_key: str) -> bool:
    """True when a queue bound with ``pattern`` receives an event published with ``routing_key``."""
    return _match(_words(pattern), _words(routing_key))


@lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], key: tuple[str, ...]) -> bool:
    # Iterative on the fixed part, recursive only at "#": patterns are short, and the cache
    # makes repeated (pattern, key) pairs free on the hot publish path.
    p = 0
    k = 0
    while p < len(pattern):
        word = pattern[p]
        if word == "#":
            rest = pattern[p + 1 :]
            if not rest:
                return True
            # "#" swallows 0..n words; try every split point.
            return any(_match(rest, key[i:]) for i in range(k, len(key) + 1))
        if k >= len(key):
            return False
        if word != "*" and word != key[k]:
            return False
        p += 1
        k += 1
    return k == len(key)
