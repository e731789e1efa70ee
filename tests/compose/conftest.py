"""One compose topology shared by the tests of this folder (bringing it up costs tens of seconds); the cluster profile has its own (test_broker_cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compose.stack import Stack, compose_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with compose_stack(tmp_path_factory.mktemp("compose")) as running:
        yield running
