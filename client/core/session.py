"""The composition of the client core: from an address and a login to a running chat client.

Both UIs (``client/cli.py`` and ``client/qt/app.py``) and the tests build their objects here,
so the CLI and the desktop app connect exactly the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chase.logging import get_logger
from chase.schemas import UserRef
from client.core.api import AuthApi, AuthSession
from client.core.backoff import BackoffPolicy, Sleep
from client.core.chat import ChatClient
from client.core.endpoints import Endpoints
from client.core.errors import ProtocolFailure
from client.core.local import LocalState, account_file, default_data_dir
from client.core.transport import WebSocketConnector

if TYPE_CHECKING:
    from client.core.e2ee.manager import E2EE

log = get_logger(__name__)


def open_api(endpoints: Endpoints, *, timeout: float = 10.0) -> AuthApi:
    """An auth API client that verifies the server; the caller must ``await api.aclose()``.

    Raises CertificateNotTrusted when the CA file is missing or unreadable.
    """
    return AuthApi(endpoints.auth_url, endpoints.ssl_context(), timeout=timeout)


async def with_told_gateway(api: AuthApi, endpoints: Endpoints) -> Endpoints:
    """``endpoints`` with the gateway the server tells its clients (``GET /endpoints``): the
    one address a user gives is the auth API's. An older server that does not say (404)
    keeps the default, the same host at the usual port. Call it unless the user named a
    gateway themselves; raises ProtocolFailure for a gateway that is not ``wss://``."""
    told = await api.gateway_url()
    if told is None:
        return endpoints
    try:
        return Endpoints.resolve(endpoints.auth_url, told, endpoints.ca_path)
    except ValueError:
        raise ProtocolFailure(f"the server named a gateway that is not wss://: {told!r}") from None


def local_state(endpoints: Endpoints, session: AuthSession, data_dir: Path | None = None) -> LocalState | None:
    """This account's kept outbox and sync cursor (see :mod:`client.core.local`), read from disk.

    None when another client of this account on this computer holds them: this one then keeps
    nothing on disk (:attr:`ChatClient.keeps_unsent` is False). The chat client releases it.
    """
    path = account_file(data_dir or default_data_dir(), endpoints.auth_url, session.user.id)
    state = LocalState(path, session.user.id)
    if not state.acquire():
        log.warning("client.local_state_in_use")
        return None
    return state.load()


def chat_client(endpoints: Endpoints, session: AuthSession, *, policy: BackoffPolicy | None = None,
                sleep: Sleep | None = None, local: LocalState | None = None, e2ee: E2EE | None = None) -> ChatClient:
    """A chat client for ``session``, not yet connected: the caller must ``await client.start()``.

    With ``local`` (see :func:`local_state`) unsent messages and the sync cursor are kept on disk.
    """
    connector = WebSocketConnector(endpoints.gateway_url, endpoints.ssl_context())
    if sleep is None:
        return ChatClient(connector, session, policy=policy, local=local, e2ee=e2ee)
    return ChatClient(connector, session, policy=policy, sleep=sleep, local=local, e2ee=e2ee)


@dataclass
class Directory:
    """Users by id and by name (names compare case-insensitively, as the server does)."""

    users: list[UserRef] = field(default_factory=list)

    def add(self, user: UserRef) -> bool:
        """Add a user unless known; True when it was new."""
        if any(u.id == user.id for u in self.users):
            return False
        self.users.append(user)
        self.users.sort(key=lambda u: u.id)
        return True

    def by_id(self, user_id: int) -> UserRef | None:
        return next((u for u in self.users if u.id == user_id), None)

    def by_name(self, name: str) -> UserRef | None:
        wanted = name.lower()
        return next((u for u in self.users if u.username.lower() == wanted), None)

    def name(self, user_id: int) -> str:
        user = self.by_id(user_id)
        return user.username if user else f"user #{user_id}"
