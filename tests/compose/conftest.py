"""One compose topology for the tests of this folder (bringing it up costs tens of seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compose.stack import Stack, compose_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with compose_stack(tmp_path_factory.mktemp("compose")) as running:
        yield running
