"""Every endpoint of the auth OpenAPI, fuzzed by schemathesis with and without a token, against
the real HTTPS server: never a 5xx, every answer as the schema says."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from chase.store import migrate
from chase.store.engine import create_engine
from chase.tls import client_context
from services.auth.settings import AuthSettings
from tests.helpers import unused_port

pytestmark = pytest.mark.timeout(120)
PASSWORD = "correct horse battery"
#: Operations whose bodies carry a signature over their own keys (docs/e2ee.md).
SIGNED_BODIES = {"/api/v1/devices/current"}
EXAMPLES = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


class AuthThread:
    """The auth service alone (SQLite, no bus) on a thread and event loop of its own."""

    def __init__(self, database_url: str, certs: Path) -> None:
        # The throttle is not under test here: thousands of bad logins from one address must
        # keep being answered, so schema conformance is what is checked. Nor is the body cap
        # (tests/integration/test_security_resources.py): a generated list of a thousand keys
        # must reach the schema's own checks, not stop at 413.
        self.settings = AuthSettings(database_url=database_url, certs_dir=certs, port=unused_port(),
                                     bcrypt_rounds=4, max_body_bytes=4 * 1024 * 1024,
                                     login_free_failures_per_address=10**6,
                                     login_free_failures_per_pair=10**6, login_free_failures_per_account=10**6)
        self.url = f"https://127.0.0.1:{self.settings.port}"
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        from services.auth import main as auth_main
        from tests.helpers import port_open, wait_until

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        engine = create_engine(self.settings.database_url)
        await migrate.upgrade(engine)
        task = asyncio.create_task(auth_main.run(self.settings, engine=engine, bus=None))
        await wait_until(lambda: port_open(self.settings.port))
        self._started.set()
        await self._stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()

    def __enter__(self) -> AuthThread:
        self._thread.start()
        assert self._started.wait(30), "the auth service did not start"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, dev_certs: Path) -> Iterator[AuthThread]:
    database = tmp_path_factory.mktemp("fuzz") / "chase.db"
    with AuthThread(f"sqlite+aiosqlite:///{database}", dev_certs) as server:
        yield server


@pytest.fixture(scope="module")
def auth_schema(auth_server: AuthThread, dev_certs: Path):  # noqa: ANN201
    response = httpx.get(f"{auth_server.url}/openapi.json", verify=client_context(dev_certs / "ca.pem"))
    schema = schemathesis.openapi.from_dict(response.json())
    schema.config.update(base_url=auth_server.url)
    return schema


def fresh_token(server: AuthThread, ca: Path) -> str:
    """A new user's session: a case may log out everywhere or change the password."""
    name = f"u{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=server.url, verify=client_context(ca)) as http:
        assert http.post("/api/v1/users", json={"username": name, "password": PASSWORD}).status_code == 201
        return http.post("/api/v1/sessions", json={"username": name, "password": PASSWORD}).json()["token"]


def fuzz(schema, call) -> list[str]:  # noqa: ANN001
    """Run ``call(case)`` on generated cases of every operation; the operations covered."""
    covered = []
    for result in schema.get_all_operations():
        operation = result.ok()

        # Valid requests and deliberately invalid ones (wrong types, missing fields, out of range).
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                          operation.as_strategy(GenerationMode.NEGATIVE))

        @EXAMPLES
        @given(case=cases)
        def check(case) -> None:  # noqa: ANN001
            call(case)

        check()
        covered.append(f"{operation.method.upper()} {operation.path}")
    return covered


def test_every_endpoint_without_a_token(auth_schema, dev_certs: Path) -> None:  # noqa: ANN001
    covered = fuzz(auth_schema, lambda case: case.call_and_validate(verify=str(dev_certs / "ca.pem")))
    assert len(covered) >= 10, covered


def test_every_endpoint_with_a_token(auth_schema, auth_server: AuthThread, dev_certs: Path) -> None:  # noqa: ANN001
    ca = dev_certs / "ca.pem"

    token = [fresh_token(auth_server, ca)]

    def call(case) -> None:  # noqa: ANN001
        # A device's keys are schema-valid and still refused (422 invalid_signature) unless
        # they are signed by their own key, which a generator cannot do.
        signed = case.operation.path in SIGNED_BODIES
        case.call_and_validate(headers={"Authorization": f"Bearer {token[0]}"}, verify=str(ca),
                               excluded_checks=[positive_data_acceptance] if signed else None)
        if case.method.upper() in ("DELETE", "PUT"):
            # It may have ended the session (logout, revoke, password change): a new one.
            token[0] = fresh_token(auth_server, ca)

    covered = fuzz(auth_schema, call)
    assert "GET /api/v1/sessions" in covered and "PUT /api/v1/users/me/password" in covered
