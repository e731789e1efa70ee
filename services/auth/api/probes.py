"""``GET /readyz`` and ``GET /api/v1/endpoints``: what orchestrators and clients ask before
anything else. (``GET /healthz`` is in ``routes``.)"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from chase.probes import Check, bus_check, database_check, readiness
from services.auth.api.deps import Settings

probes = APIRouter()
endpoints = APIRouter(prefix="/api/v1")


class Readiness(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(description='"ok" or "unavailable"')
    checks: dict[str, str] = Field(description='per dependency: "ok" or why it is not usable')


class Endpoints(BaseModel):
    """Where a client goes next: one auth address is all it needs to be given."""

    model_config = ConfigDict(extra="forbid")

    gateway_url: str = Field(description="The WebSocket gateway (wss://), usually a load balancer in front of several")


def _checks(request: Request) -> dict[str, Check]:
    service = request.app.state.auth_service
    checks = {"database": database_check(service.engine)}
    bus = request.app.state.bus
    if bus is not None:
        checks["broker"] = bus_check(bus)
    return checks


@probes.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, tags=["health"])
async def readyz(request: Request) -> Readiness | JSONResponse:
    """200 when the database and the broker are usable, 503 (naming the failing ones) otherwise.
    For load balancers: send no traffic while 503; do not restart for it."""
    ok, answers = await readiness(_checks(request))
    if not ok:
        return JSONResponse({"status": "unavailable", "checks": answers}, status_code=503)
    return Readiness(status="ok", checks=answers)


@endpoints.get("/endpoints", response_model=Endpoints, tags=["endpoints"])
async def get_endpoints(settings: Settings) -> Endpoints:
    """The gateway address clients connect to after logging in (``CHASE_AUTH_GATEWAY_URL``).
    No token needed: it is the same for everyone."""
    return Endpoints(gateway_url=settings.gateway_url)
