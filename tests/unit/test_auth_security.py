"""Password hashing and tokens."""

from __future__ import annotations

import base64

from chase.clock import SecureTokens
from services.auth.security import PasswordHasher, hash_token, new_token, same_hash


async def test_hash_and_verify() -> None:
    hasher = PasswordHasher(rounds=4)
    stored = await hasher.hash("pässwörd 🔐")
    assert stored.startswith("sha256$$2b$04$")
    assert await hasher.verify("pässwörd 🔐", stored)
    assert not await hasher.verify("pässwörd 🔑", stored)


async def test_unknown_user_check_is_a_real_bcrypt_check_that_fails() -> None:
    hasher = PasswordHasher(rounds=4)
    assert not await hasher.verify("no such user", None)  # the dummy hash's own password
    assert not await hasher.verify("x" * 100, await hasher.hash("x" * 72))  # never silently truncated
    assert not await hasher.verify("x" * 73, await hasher.hash("x" * 72 + "y"))


async def test_hashes_from_before_pre_hashing_still_verify() -> None:
    import bcrypt

    old = bcrypt.hashpw("pässwörd 🔐".encode(), bcrypt.gensalt(4)).decode()
    hasher = PasswordHasher(rounds=4)
    assert await hasher.verify("pässwörd 🔐", old)
    assert not await hasher.verify("pässwörd 🔑", old)


def test_tokens_have_256_bits_and_are_stored_as_sha256() -> None:
    tokens = {new_token(SecureTokens()) for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == 32
    token = next(iter(tokens))
    digest = hash_token(token)
    assert len(digest) == 64 and token not in digest
    assert same_hash(digest, hash_token(token)) and not same_hash(digest, hash_token(token + "x"))
