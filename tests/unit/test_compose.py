"""docker-compose.yml checked against the code, without an engine: every service runs a real
`chase` subcommand, every CHASE_* variable is a real setting, start-up waits on health checks,
keys stay where they belong. tests/compose/ runs the file for real."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chase.cli import _parser
from chase.config import CommonSettings
from chase.settings_doc import env_name
from services.auth.settings import AuthSettings
from services.gateway.settings import GatewaySettings
from services.persistence.settings import PersistenceSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_BY_COMMAND = {
    "auth": AuthSettings,
    "gateway": GatewaySettings,
    "persistence": PersistenceSettings,
    "migrate": CommonSettings,
    "certs": CommonSettings,
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env_names(settings_cls: type[CommonSettings]) -> set[str]:
    return {env_name(settings_cls, name, field) for name, field in settings_cls.model_fields.items()}


def test_every_chase_service_runs_a_real_subcommand_with_real_settings(compose: dict) -> None:
    commands = set(_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001
    chase_services = {n: s for n, s in compose["services"].items() if s.get("image") == "${CHASE_IMAGE:-chase:latest}"}
    assert {"auth", "gateway-1", "gateway-2", "persistence-1", "persistence-2"} <= set(chase_services)
    for name, service in chase_services.items():
        command = service["command"][0]
        assert command in commands, f"{name}: unknown subcommand {command}"
        known = _env_names(SETTINGS_BY_COMMAND[command])
        unknown = {k for k in service["environment"] if k.startswith("CHASE_")} - known
        assert not unknown, f"{name}: {sorted(unknown)} are not settings of `chase {command}`"


def test_services_wait_for_healthy_dependencies(compose: dict) -> None:
    services = compose["services"]
    for infra in ("mariadb", "rabbitmq"):
        assert "healthcheck" in services[infra]
    for name in ("auth", "gateway-1", "persistence-1"):
        depends = services[name]["depends_on"]
        assert depends["rabbitmq"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["mariadb"]["condition"] == "service_healthy"


def test_gateways_are_distinct_and_all_behind_the_balancer(compose: dict) -> None:
    services = compose["services"]
    gateways = [n for n, s in services.items() if s.get("command") == ["gateway"]]
    ids = {services[g]["environment"]["CHASE_GATEWAY_ID"] for g in gateways}
    assert len(gateways) == 2 and len(ids) == 2
    haproxy_cfg = (ROOT / "deploy" / "haproxy.cfg").read_text()
    for gateway in gateways:
        assert f"server {gateway} {gateway}:8765" in haproxy_cfg
        assert "ports" not in services[gateway]  # reached through the balancer only


def test_every_long_running_service_has_a_health_check(compose: dict) -> None:
    for name, service in compose["services"].items():
        if name in ("certs", "migrate"):
            continue
        assert "test" in service["healthcheck"], name
        assert not service["healthcheck"].get("disable"), name


def test_ports_are_published_on_loopback_only(compose: dict) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_each_service_mounts_only_its_own_certificates(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        volumes = [v.split(":")[0] for v in service.get("volumes", [])]
        if name == "certs":
            assert "ca" in volumes
            continue
        assert "ca" not in volumes, name
        cert_volumes = [v for v in volumes if v.startswith("certs-")]
        assert cert_volumes in ([], [f"certs-{name}"]), f"{name}: {cert_volumes}"
