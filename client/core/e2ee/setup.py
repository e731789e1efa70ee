"""Open a device's end-to-end encryption: its vault file under the client's data folder, its
keys published (composition for the CLI and the desktop client)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from client.core.api import AuthApi, AuthSession
from client.core.e2ee.keys_api import KeysApi
from client.core.e2ee.manager import E2EE
from client.core.e2ee.vault import KeyringKey, KeySource, PassphraseKey, Vault, keyring_available
from client.core.local import default_data_dir


def vault_file(data_dir: Path, server_url: str, session: AuthSession) -> Path:
    """One vault per device (a device is one login session) of one account on one server."""
    parts = urlsplit(server_url)
    server = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{parts.hostname or 'local'}_{parts.port or 443}")
    return data_dir / "keys" / f"{server}-user{session.user.id}-{session.session_id}.vault"


def key_source(session: AuthSession, passphrase: str | None) -> KeySource:
    """The OS keyring when there is one, else the passphrase (required then)."""
    if passphrase is not None:
        return PassphraseKey(passphrase)
    if keyring_available():
        return KeyringKey(f"user{session.user.id}-{session.session_id}")
    raise ValueError("no OS keyring here: a passphrase is needed to keep the encryption keys on disk")


async def open_e2ee(api: AuthApi, session: AuthSession, server_url: str, *, passphrase: str | None = None,
                    data_dir: Path | None = None) -> E2EE:
    path = vault_file(data_dir or default_data_dir(), server_url, session)
    e2ee = E2EE(KeysApi(api, session), session, Vault(path, key_source(session, passphrase)))
    await e2ee.setup()
    return e2ee
