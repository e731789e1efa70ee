"""Tests here run on uvloop, the event loop the services run on (``chase.cli``): some driver
failures look different there (a closed transport raises instead of logging)."""

from __future__ import annotations

import pytest
import uvloop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    return {"uvloop": uvloop.new_event_loop}
