"""The in-process broker's binding index routes exactly as topic matching one by one does."""

from __future__ import annotations

import itertools

from chase.bus.memory import Bindings
from chase.bus.topic import matches

PATTERNS = ["#.7.#", "#.12.#", "message.stored.public", "presence.*", "#", "user.*.revoked", "a.#.b", "#.7", "*.7.#"]
KEYS = ["message.stored.public", "message.stored.dm.7.12", "message.stored.dm.12.70", "user.7.revoked",
        "presence.gw-1", "message.rejected.7", "a.b", "a.x.y.b", "7", "x.7", "", "rpc.history"]


def test_the_index_agrees_with_matching_each_pattern() -> None:
    for size in range(len(PATTERNS) + 1):
        for chosen in itertools.combinations(PATTERNS, min(size, 3)):
            bindings = Bindings(chosen)
            for key in KEYS:
                assert bindings.match(key) == any(matches(p, key) for p in chosen), (chosen, key)


def test_unbinding_one_user_leaves_the_others() -> None:
    bindings = Bindings(["#.7.#", "#.12.#"])
    bindings.discard("#.7.#")
    bindings.discard("#.99.#")  # never bound: nothing happens
    assert not bindings.match("message.rejected.7")
    assert bindings.match("message.stored.dm.7.12")
    assert set(bindings) == {"#.12.#"} and "#.12.#" in bindings and len(bindings) == 1
