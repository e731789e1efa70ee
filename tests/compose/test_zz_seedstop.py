"""The cluster profile (docker-compose.cluster.yml): three RabbitMQ nodes, the persistence
queue a quorum queue replicated on all three. The node leading that queue is stopped under
load; the services reconnect to the others, and nothing acknowledged is lost or doubled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.compose.load import ChatLoad
from tests.compose.stack import Stack, compose_stack

pytestmark = pytest.mark.timeout(900)
NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
QUEUE = "chase.persistence.submitted"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    files = ("docker-compose.yml", "docker-compose.cluster.yml")
    with compose_stack(tmp_path_factory.mktemp("cluster"), files, extra_services=NODES[1:]) as running:
        yield running


def _queue(stack: Stack, node: str) -> dict:
    out = stack.exec(node, "rabbitmqctl", "-q", "list_queues", "name", "type", "leader", "members", "online",
                     "--formatter", "json")
    return next(q for q in json.loads(out) if q["name"] == QUEUE)


async def test_losing_the_leading_broker_node_loses_nothing(cluster: Stack) -> None:
    queue = await asyncio.to_thread(_queue, cluster, "rabbitmq")
    assert queue["type"] == "quorum"
    assert sorted(queue["members"]) == [f"rabbit@{n}" for n in NODES]
    leader = "rabbitmq"

    async with ChatLoad(cluster) as load:
        await asyncio.sleep(2)
        await asyncio.to_thread(cluster.compose, "stop", "-t", "20", leader)
        await asyncio.sleep(5)  # the load goes on with two nodes out of three
        survivor = next(n for n in NODES if n != leader)
        after = await asyncio.to_thread(_queue, cluster, survivor)
        assert len(after["online"]) == 2
        await load.check()
        print(f"stopped {leader}; messages sent: {len(load.sent)}")
