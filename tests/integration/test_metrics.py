"""Metrics of the running system, scraped the way Prometheus does: over verified TLS.

The services count real events (a registration, logins, a WebSocket client's frames, a stored
message) and ``CHASE_METRICS_PORT`` serves the process's registry (never the public auth port). The registry is process-global, so
each test compares values read before and after.

The counting itself does not depend on the bus or database adapter, so the system runs on
the embedded default only; ``chase gateway`` alone needs RabbitMQ.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chase import serve
from chase.config import ConfigError
from chase.tls import client_context
from services.auth.client import AuthRejected
from services.gateway.settings import GatewaySettings
from tests.helpers import port_open, unused_port, wait_until
from tests.integration.system import System, delete_namespace, running_system

pytestmark = pytest.mark.timeout(60)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str, ca: Path) -> Samples:
    """Every sample at ``url``, parsed from the Prometheus text format."""
    async with httpx.AsyncClient(verify=client_context(ca)) as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def system(sqlite_url: str, dev_certs: Path) -> AsyncIterator[System]:
    async with running_system(sqlite_url, certs_dir=dev_certs) as running:
        yield running


@pytest.fixture
async def metrics_url(dev_certs: Path) -> AsyncIterator[str]:
    from chase.config import CommonSettings
    from chase.serve import open_metrics

    async with open_metrics(CommonSettings(certs_dir=dev_certs, metrics_port=unused_port())) as port:
        yield f"https://127.0.0.1:{port}/metrics"


async def test_the_services_count_what_they_do_and_the_metrics_port_serves_it(system: System, metrics_url: str
                                                                            ) -> None:
    async with httpx.AsyncClient(verify=client_context(system.ca_path)) as http:
        assert (await http.get(f"{system.auth_url}/metrics")).status_code == 404  # not on the public port
    before = await scrape(metrics_url, system.ca_path)

    alice = await system.login("alice")
    with pytest.raises(AuthRejected):
        await system.auth.login("alice", "not her password")
    async with system.client(alice.token) as ws:
        await ws.expect("hello")
        during = await scrape(metrics_url, system.ca_path)
        await ws.send_frame(type="send", client_msg_id="m-1", body="counted")
        await ws.expect("ack")
        await ws.expect("message")
        await ws.send("not json")
        error = await ws.expect("error")
        assert error.code == "invalid_frame"
        await ws.send_frame(type="ping")
        await ws.expect("pong")
    async with system.client("forged-token") as intruder:
        code, _ = await intruder.closed()
        assert code == 4401
    await system.auth.logout(alice.token)

    open_now = get(before, "chase_gateway_connections_open")
    assert get(during, "chase_gateway_connections_open") == open_now + 1

    async def closed_again() -> bool:
        return get(await scrape(metrics_url, system.ca_path), "chase_gateway_connections_open") == open_now

    await wait_until(closed_again)
    after = await scrape(metrics_url, system.ca_path)

    def delta(name: str, **labels: str) -> float:
        return get(after, name, **labels) - get(before, name, **labels)

    assert delta("chase_auth_registrations_total") == 1
    assert delta("chase_auth_logins_total", outcome="ok") == 1
    assert delta("chase_auth_logins_total", outcome="invalid") == 1
    # The gateway's check of alice's token and the logout's; then the forged one.
    assert delta("chase_auth_token_checks_total", outcome="ok") == 2
    assert delta("chase_auth_token_checks_total", outcome="invalid") == 1
    assert delta("chase_auth_logouts_total") == 1
    assert delta("chase_gateway_connections_total", outcome="accepted") == 1
    assert delta("chase_gateway_connections_total", outcome="refused_token") == 1
    assert delta("chase_gateway_frames_received_total", type="send") == 1
    assert delta("chase_gateway_frames_received_total", type="ping") == 1
    assert delta("chase_gateway_frames_received_total", type="refused") == 1
    assert delta("chase_gateway_errors_sent_total", code="invalid_frame") == 1
    assert delta("chase_gateway_messages_fanned_out_total") == 1  # alice's one connection
    assert delta("chase_persistence_messages_stored_total") == 1
    assert delta("chase_persistence_batch_messages_sum") == 1
    assert delta("chase_persistence_batches_total") == 1
    assert delta("chase_persistence_store_batch_seconds_count") == 1


async def test_metrics_port_off_serves_nothing(dev_certs: Path) -> None:
    async with serve.open_metrics(GatewaySettings(certs_dir=dev_certs)) as port:
        assert port is None


async def test_metrics_port_serves_the_registry_over_verified_tls(dev_certs: Path) -> None:
    settings = GatewaySettings(certs_dir=dev_certs, metrics_port=unused_port())
    async with serve.open_metrics(settings) as port:
        samples = await scrape(f"https://127.0.0.1:{port}/metrics", dev_certs / "ca.pem")
        assert ("chase_gateway_connections_open", frozenset()) in samples
    assert not await port_open(settings.metrics_port)


async def test_a_taken_metrics_port_is_a_config_error(dev_certs: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = GatewaySettings(certs_dir=dev_certs, metrics_port=taken.getsockname()[1])
        with pytest.raises(ConfigError, match="CHASE_METRICS_PORT"):
            async with serve.open_metrics(settings):
                pass


async def test_chase_gateway_alone_serves_its_metrics_on_the_metrics_port(
    amqp_url: str, bus_namespace: str, dev_certs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = unused_port()
    for name, setting in {
        "CHASE_AMQP_URL": amqp_url,
        "CHASE_BUS_NAMESPACE": bus_namespace,
        "CHASE_CERTS_DIR": str(dev_certs),
        "CHASE_GATEWAY_PORT": "0",
        "CHASE_METRICS_PORT": str(port),
    }.items():
        monkeypatch.setenv(name, setting)
    gateway = asyncio.create_task(serve.serve_gateway())
    try:
        await wait_until(lambda: gateway.done() or port_open(port))
        assert not gateway.done(), gateway.exception()
        samples = await scrape(f"https://127.0.0.1:{port}/metrics", dev_certs / "ca.pem")
        assert ("chase_gateway_connections_total", frozenset({("outcome", "accepted")})) in samples
    finally:
        gateway.cancel()
        await asyncio.gather(gateway, return_exceptions=True)
        await delete_namespace(amqp_url, set(), bus_namespace)
