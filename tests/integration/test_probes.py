"""Readiness over HTTP: the auth service's /readyz and /api/v1/endpoints on its HTTPS port, and
the plain-HTTP probe port every `chase` process can serve (CHASE_HEALTH_PORT)."""

from __future__ import annotations

import httpx
import pytest

from chase.config import CommonSettings
from chase.probes import bus_check, flag_check, open_probes
from chase.tls import client_context
from tests.helpers import unused_port
from tests.integration.system import System

pytestmark = pytest.mark.timeout(60)


async def test_auth_answers_readiness_and_the_gateway_address(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.auth_url, verify=client_context(system.ca_path)) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
        assert (await http.get("/api/v1/endpoints")).json() == {"gateway_url": system.gateway_url}
        paths = (await http.get("/openapi.json")).json()["paths"]
        assert {"/readyz", "/api/v1/endpoints"} <= set(paths)


async def test_the_probe_port_says_alive_and_ready_or_why_not(system: System) -> None:
    draining = False
    settings = CommonSettings(health_port=unused_port())
    checks = {"broker": bus_check(system.bus), "accepting": flag_check(lambda: not draining, "shutting down")}
    async with open_probes(settings, checks) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        draining = True
        refused = await http.get("/readyz")
        assert refused.status_code == 503
        assert refused.json() == {"status": "unavailable", "checks": {"broker": "ok", "accepting": "shutting down"}}
        assert (await http.get("/healthz")).status_code == 200


async def test_every_auth_answer_carries_a_request_id(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.auth_url, verify=client_context(system.ca_path)) as http:
        made = (await http.get("/readyz")).headers["x-request-id"]
        assert len(made) == 32
        assert (await http.get("/readyz", headers={"X-Request-ID": "lb-1234"})).headers["x-request-id"] == "lb-1234"
        odd = (await http.get("/readyz", headers={"X-Request-ID": "no spaces allowed"})).headers["x-request-id"]
        assert odd != "no spaces allowed" and len(odd) == 32
