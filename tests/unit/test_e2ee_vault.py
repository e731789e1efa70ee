"""Keys at rest: the vault file is encrypted (nothing of the document readable in it), opens
only with the right passphrase, and survives a restart of the device's Olm account."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import vodozemac

from client.core.e2ee.manager import WrongRecoveryKey, recovery_key_bytes, recovery_key_text
from client.core.e2ee.safety import fingerprint
from client.core.e2ee.vault import EphemeralVault, PassphraseKey, Vault, VaultLocked

FAST = 2**10  # scrypt cost for tests; the real one is SCRYPT_N


def test_the_file_holds_no_plaintext_and_needs_the_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "device.vault"
    vault = Vault(path, PassphraseKey("correct horse", n=FAST))
    assert vault.load() is None
    account = vodozemac.Account()
    secret_text = "the plaintext of a read message"
    vault.save({"account": account.pickle(vault.pickle_key), "read": {"1": [secret_text, "encrypted", ""]}})
    raw = path.read_text()
    assert secret_text not in raw and "account" not in raw and "read" not in json.loads(raw)
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    again = Vault(path, PassphraseKey("correct horse", n=FAST))
    document = again.load()
    assert document is not None and document["read"]["1"][0] == secret_text
    restored = vodozemac.Account.from_pickle(document["account"], again.pickle_key)
    assert restored.ed25519_key.to_base64() == account.ed25519_key.to_base64()
    with pytest.raises(VaultLocked):
        Vault(path, PassphraseKey("wrong horse", n=FAST)).load()
    assert "correct horse" not in repr(PassphraseKey("correct horse"))


def test_an_ephemeral_vault_writes_nothing(tmp_path: Path) -> None:
    vault = EphemeralVault()
    assert vault.load() is None and len(vault.pickle_key) == 32
    vault.save({"anything": 1})
    assert list(tmp_path.iterdir()) == []


def test_recovery_keys_round_trip_and_refuse_garbage() -> None:
    secret = bytes(range(32))
    text = recovery_key_text(secret)
    assert len(text.split()) == 13
    assert recovery_key_bytes(text.lower()) == secret
    with pytest.raises(WrongRecoveryKey):
        recovery_key_bytes("not a key")


def test_safety_numbers_are_symmetric_and_change_with_any_key() -> None:
    alice, bob = [("a1", "A" * 43)], [("b1", "B" * 43)]
    number = fingerprint({1: alice, 2: bob})
    assert number == fingerprint({2: bob, 1: alice})
    assert len(number.split()) == 12 and all(len(group) == 5 for group in number.split())
    assert number != fingerprint({1: alice, 2: [("b1", "C" * 43)]})
    assert number != fingerprint({1: alice, 2: [*bob, ("b2", "D" * 43)]})
