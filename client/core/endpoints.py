"""Where the server is and which CA to trust: one object built from the user's options."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from chase.tls import client_context
from client.core.errors import CertificateNotTrusted

DEFAULT_SERVER = "https://127.0.0.1:8443"
DEFAULT_GATEWAY_PORT = 8765
DEFAULT_CA = Path("certs/ca.pem")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Endpoints:
    #: The auth HTTP API's base, e.g. https://127.0.0.1:8443 (``/api/v1`` is added by the API).
    auth_url: str
    #: The gateway's WebSocket URL, e.g. wss://127.0.0.1:8765.
    gateway_url: str
    #: The CA bundle to trust; None means the system's trust store.
    ca_path: Path | None

    @classmethod
    def resolve(cls, server: str = DEFAULT_SERVER, gateway: str | None = None,
                ca: Path | str | None = None) -> Endpoints:
        """Fill in the defaults: gateway on the server's host at 8765, dev CA for a local server.

        Raises ValueError for an address that is not https:// (or wss:// for the gateway):
        ChaSe never talks to a server in clear text.
        """
        server = server.strip().rstrip("/")
        if "://" not in server:
            server = "https://" + server
        parts = urlsplit(server)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"the server address must be https://host[:port], got {server!r}")
        host = parts.hostname
        if gateway is None:
            shown = f"[{host}]" if ":" in host else host
            gateway = f"wss://{shown}:{DEFAULT_GATEWAY_PORT}"
        elif urlsplit(gateway).scheme != "wss":
            raise ValueError(f"the gateway address must be wss://host[:port], got {gateway!r}")
        if ca is None and host in LOCAL_HOSTS:
            ca = DEFAULT_CA
        return cls(auth_url=server, gateway_url=gateway, ca_path=Path(ca) if ca is not None else None)

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying TLS context; raises CertificateNotTrusted when the CA file is missing."""
        try:
            return client_context(self.ca_path)
        except FileNotFoundError as exc:
            raise CertificateNotTrusted(str(exc)) from None
        except ssl.SSLError as exc:
            raise CertificateNotTrusted(f"cannot read CA file {self.ca_path}: {exc}") from None


def is_certificate_error(exc: BaseException) -> bool:
    """True when ``exc`` (or anything it was raised from) is a failed certificate check."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
