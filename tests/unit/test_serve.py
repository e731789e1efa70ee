"""`chase serve`: its gateway checks tokens with the auth service of the same process."""

from __future__ import annotations

import pytest

from chase.config import ConfigError
from chase.serve import beside
from services.auth.settings import AuthSettings
from services.gateway.settings import GatewaySettings


@pytest.fixture(autouse=True)
def _no_chase_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("CHASE_")]:
        monkeypatch.delenv(name)


def test_the_gateway_follows_a_moved_auth_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHASE_AUTH_PORT", "18443")
    assert beside(GatewaySettings(), AuthSettings()).auth_url == "https://127.0.0.1:18443"


@pytest.mark.parametrize(
    ("host", "url"),
    [("0.0.0.0", "https://127.0.0.1:8443"), ("::", "https://[::1]:8443"), ("::1", "https://[::1]:8443"),
     ("localhost", "https://localhost:8443")],
)
def test_the_gateway_reaches_the_auth_host_it_binds(monkeypatch: pytest.MonkeyPatch, host: str, url: str) -> None:
    monkeypatch.setenv("CHASE_AUTH_HOST", host)
    assert beside(GatewaySettings(), AuthSettings()).auth_url == url


def test_an_explicit_gateway_auth_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHASE_AUTH_PORT", "18443")
    monkeypatch.setenv("CHASE_GATEWAY_AUTH_URL", "https://auth.internal:9443")
    assert beside(GatewaySettings(), AuthSettings()).auth_url == "https://auth.internal:9443"


def test_an_auth_port_picked_at_random_is_refused_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHASE_AUTH_PORT", "0")
    with pytest.raises(ConfigError, match="CHASE_AUTH_PORT"):
        beside(GatewaySettings(), AuthSettings())
