"""The compose topology on a real Docker engine, for the tests in this folder.

:func:`compose_stack` builds the base-image stand-ins (``deploy/standins.sh``), stages the
wheels with this interpreter's pip (``deploy/stage-wheels.sh``), builds the image, brings
``docker-compose.yml`` up under a project name of its own with its ports on 127.0.0.1 only,
and always takes everything down again (containers, network, volumes), even when start-up
fails. Every step is bounded. Nothing is pulled: the images the compose file names exist
locally (the stand-ins, or the real ones on a machine that has them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from chase.tls import client_context
from tests.helpers import unused_port

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
#: Chase services, in the order a rolling restart takes them.
CHASE_SERVICES = ("persistence-1", "persistence-2", "auth", "gateway-1", "gateway-2")


def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) when present, else ``docker-compose``, else None."""
    if shutil.which("docker") is None:
        return None
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def require_engine() -> list[str]:
    """The compose command; skips (fails under CI) when there is no engine or no compose."""
    command = compose_command()
    reason = None
    if command is None:
        reason = "no docker CLI with compose (deploy/install-docker.sh installs them)"
    elif subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        reason = "no Docker engine answers (deploy/install-docker.sh starts one)"
    if reason is not None:
        if IN_CI:
            pytest.fail(f"{reason} (CI must not skip the compose tests)")
        pytest.skip(reason)
    return command  # type: ignore[return-value]


def _run(args: list[str], *, timeout: float, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-3000:]}")
    return result


@dataclass
class Stack:
    command: list[str]
    project: str
    auth_port: int
    gateway_port: int
    ca: Path
    env: dict[str, str] = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    files: tuple[str, ...] = ("docker-compose.yml",)

    @property
    def auth_url(self) -> str:
        return f"https://127.0.0.1:{self.auth_port}"

    @property
    def gateway_url(self) -> str:
        return f"wss://localhost:{self.gateway_port}"

    def compose(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        files = [arg for name in self.files for arg in ("-f", name)]
        return _run([*self.command, *files, "-p", self.project, *args], timeout=timeout, env=self.env, check=check)

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def exec(self, service: str, *args: str, timeout: float = 60) -> str:
        return self.compose("exec", "-T", service, *args, timeout=timeout).stdout

    def health(self, service: str) -> str:
        """The engine's view of a service: healthy, unhealthy, starting, or its state without a check."""
        state = json.loads(_run(["docker", "inspect", "-f", "{{json .State}}", self.container(service)],
                                timeout=30).stdout)
        return state.get("Health", {}).get("Status") or state["Status"]

    def wait_healthy(self, *services: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        for service in services:
            while (status := self.health(service)) != "healthy":
                if time.monotonic() > deadline:
                    raise AssertionError(f"{service} is {status} after {timeout} s:\n{self.logs(service)}")
                time.sleep(0.5)

    def logs(self, *services: str, tail: int = 40) -> str:
        result = self.compose("logs", "--no-color", f"--tail={tail}", *services, check=False, timeout=60)
        return result.stdout + result.stderr

    def sql(self, query: str) -> list[list[str]]:
        """Rows of ``query`` on the compose database (through the MariaDB container's client)."""
        out = self.exec("mariadb", "mariadb", "-N", "-B", "chase", "-e", query)
        return [line.split("\t") for line in out.splitlines() if line]

    def metric(self, service: str, name: str) -> float:
        """One unlabelled metric of a ChaSe service, read inside the compose network over TLS."""
        script = (
            "import ssl, urllib.request as u;"
            f"c = ssl.create_default_context(cafile='/app/certs/ca.pem');"
            f"print(u.urlopen('https://{service}:9464/metrics', context=c, timeout=5).read().decode())"
        )
        for line in self.exec(service, "python", "-c", script).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in the metrics of {service}")

    def wait_ready_from_host(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        context = client_context(self.ca)
        while True:
            try:
                if httpx.get(f"{self.auth_url}/readyz", verify=context, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"auth is not ready from the host after {timeout} s:\n{self.logs('auth')}")
            time.sleep(0.5)


def _timed(stack_timings: dict[str, float], name: str, args: list[str], **kwargs: object) -> None:
    started = time.monotonic()
    _run(args, **kwargs)  # type: ignore[arg-type]
    stack_timings[name] = round(time.monotonic() - started, 1)


@contextmanager
def compose_stack(tmp: Path, files: tuple[str, ...] = ("docker-compose.yml",),
                  extra_services: tuple[str, ...] = ()) -> Iterator[Stack]:
    """The whole topology, up and ready; taken down (with its volumes) on the way out.
    ``files`` are the compose files (e.g. with docker-compose.cluster.yml on top)."""
    command = require_engine()
    timings: dict[str, float] = {}
    _timed(timings, "stand-ins", ["bash", "deploy/standins.sh"], timeout=900)
    _timed(timings, "wheels", ["bash", "deploy/stage-wheels.sh", sys.executable], timeout=300)
    env = {
        **os.environ,
        "CHASE_AUTH_PUBLISH_PORT": str(unused_port()),
        "CHASE_GATEWAY_PUBLISH_PORT": str(unused_port()),
        # Tests register users by the dozen; production keeps the default cost.
        "CHASE_AUTH_BCRYPT_ROUNDS": "4",
        # One image per checkout: two checkouts testing at once never run each other's code.
        "CHASE_IMAGE": f"chase-test:{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}",
    }
    stack = Stack(command, f"chase-test-{uuid.uuid4().hex[:8]}", int(env["CHASE_AUTH_PUBLISH_PORT"]),
                  int(env["CHASE_GATEWAY_PUBLISH_PORT"]), tmp / "ca.pem", env, timings, files)
    try:
        started = time.monotonic()
        stack.compose("build", timeout=600)
        timings["build"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        stack.compose("up", "-d", "--no-build", timeout=600)
        _run(["docker", "cp", f"{stack.container('auth')}:/app/certs/ca.pem", str(stack.ca)], timeout=30)
        stack.wait_healthy(*CHASE_SERVICES, "haproxy", *extra_services)
        stack.wait_ready_from_host()
        timings["up"] = round(time.monotonic() - started, 1)
        yield stack
    except BaseException:
        print(stack.logs(tail=60))
        raise
    finally:
        started = time.monotonic()
        stack.compose("down", "-v", "--remove-orphans", "-t", "10", timeout=180, check=False)
        timings["down"] = round(time.monotonic() - started, 1)
        print(f"compose timings (s): {timings}")
