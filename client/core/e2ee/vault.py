"""The device's secrets at rest: one file, encrypted with AES-256-GCM (``cryptography``).

The file key comes from the OS keyring when there is one (a random 32-byte key stored under
the device's name), else from a passphrase through scrypt (salt in the file). The vodozemac
pickles inside are themselves encrypted with the same key. Nothing here is ever logged: the
classes hide their secrets from ``repr``.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from client.core.errors import ClientError

_AAD = b"chase-e2ee-vault-v1"
#: scrypt cost: about 50 ms on a laptop, once per start.
SCRYPT_N = 2**15


class VaultLocked(ClientError):
    """The vault exists but this key does not open it (a wrong passphrase, or a damaged file)."""


class KeySource(Protocol):
    def key(self, salt: bytes | None) -> bytes: ...
    @property
    def kind(self) -> str: ...


@dataclass(frozen=True)
class PassphraseKey:
    """A key derived from a passphrase (scrypt); used where no OS keyring is available."""

    passphrase: str = field(repr=False)
    n: int = SCRYPT_N
    kind: str = "scrypt"

    def key(self, salt: bytes | None) -> bytes:
        assert salt is not None
        return Scrypt(salt=salt, length=32, n=self.n, r=8, p=1).derive(self.passphrase.encode("utf-8"))


@dataclass(frozen=True)
class KeyringKey:
    """A random key kept in the OS keyring (``keyring`` package, when installed and usable)."""

    name: str
    kind: str = "keyring"

    def key(self, salt: bytes | None) -> bytes:
        import keyring  # noqa: PLC0415 - optional: only where an OS keyring is installed

        stored = keyring.get_password("chase-e2ee", self.name)
        if stored is None:
            stored = base64.b64encode(os.urandom(32)).decode()
            keyring.set_password("chase-e2ee", self.name, stored)
        return base64.b64decode(stored)


def keyring_available() -> bool:
    """True when an OS keyring backend is installed and not the fail/plain-text one."""
    try:
        import keyring  # noqa: PLC0415
        from keyring.backends import fail  # noqa: PLC0415
    except ImportError:
        return False
    backend = keyring.get_keyring()
    return not isinstance(backend, fail.Keyring) and "plaintext" not in type(backend).__name__.lower()


class Vault:
    """Load and save one JSON document encrypted under a key from ``source``."""

    def __init__(self, path: Path, source: KeySource) -> None:
        self.path = path
        self._source = source
        self._salt: bytes | None = None
        self._key: bytes | None = None

    def __repr__(self) -> str:
        return f"Vault({self.path.name})"

    @property
    def pickle_key(self) -> bytes:
        """The 32-byte key vodozemac pickles are encrypted with (the file key)."""
        assert self._key is not None, "load() first"
        return self._key

    def load(self) -> dict | None:
        """The saved document, or None when there is none yet (the key is then made)."""
        if not self.path.exists():
            self._salt = os.urandom(16)
            self._key = self._source.key(self._salt)
            return None
        outer = json.loads(self.path.read_text("utf-8"))
        self._salt = base64.b64decode(outer["salt"])
        self._key = self._source.key(self._salt)
        try:
            plain = AESGCM(self._key).decrypt(base64.b64decode(outer["nonce"]), base64.b64decode(outer["data"]), _AAD)
        except (InvalidTag, ValueError):
            raise VaultLocked("the encryption keys on this computer cannot be opened: wrong passphrase?") from None
        return json.loads(plain)

    def save(self, document: dict) -> None:
        assert self._key is not None and self._salt is not None, "load() first"
        nonce = os.urandom(12)
        data = AESGCM(self._key).encrypt(nonce, json.dumps(document).encode("utf-8"), _AAD)
        outer = {"version": 1, "kdf": self._source.kind, "salt": base64.b64encode(self._salt).decode(),
                 "nonce": base64.b64encode(nonce).decode(), "data": base64.b64encode(data).decode()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(outer, out)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class EphemeralVault(Vault):
    """Keys that live only in memory: for a device that ends with the program (``chase cli``
    logs in and out for every command, so its device is gone when it exits anyway)."""

    def __init__(self) -> None:
        super().__init__(Path(os.devnull), PassphraseKey(""))

    def load(self) -> dict | None:
        self._salt, self._key = b"", os.urandom(32)
        return None

    def save(self, document: dict) -> None:
        return None
