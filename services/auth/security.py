"""Password hashing and session tokens.

bcrypt is deliberately slow (tens to hundreds of milliseconds), so it runs in a worker thread
and never blocks the event loop. bcrypt reads only 72 bytes, so a password is first reduced to
the base64 of its SHA-256 (44 ASCII bytes, no NUL) and that is what bcrypt hashes: any
password up to :data:`chase.passwords.MAX_CHARS` characters counts in full, and the stored
hash says so with its ``sha256$`` prefix. Hashes stored before (plain bcrypt of at most 72
bytes) still verify. Tokens are 256 random bits from the injected token source;
only their SHA-256 is stored, and stored hashes are compared in constant time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

import bcrypt

from chase.clock import TokenSource

TOKEN_BYTES = 32  # 256 bits
SESSION_ID_BYTES = 18  # 24 url-safe characters, fits sessions.id
#: Longer "tokens" are not ours; refusing them early keeps junk away from the database.
MAX_TOKEN_CHARS = 128


#: The prefix of hashes of pre-hashed passwords (see the module docstring).
PREHASHED = "sha256$"


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


class PasswordHasher:
    """bcrypt at a fixed cost, off the event loop."""

    def __init__(self, rounds: int) -> None:
        self._rounds = rounds
        # A real hash of nothing anyone knows: checking an unknown user's password against it
        # costs the same as a real check, so response time does not reveal which names exist.
        self._dummy_hash = bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> str:
        """The hash to store: ``sha256$`` and bcrypt of the pre-hashed password."""
        hashed = await asyncio.to_thread(bcrypt.hashpw, _prehash(password), bcrypt.gensalt(self._rounds))
        return PREHASHED + hashed.decode("ascii")

    async def verify(self, password: str, stored_hash: str | None) -> bool:
        """True when ``password`` matches ``stored_hash``.

        With ``stored_hash=None`` (unknown user) it checks against a dummy hash, taking as
        long as a real check, and returns False.
        """
        if stored_hash is None:
            secret, target = _prehash(password), self._dummy_hash
        elif stored_hash.startswith(PREHASHED):
            secret, target = _prehash(password), stored_hash[len(PREHASHED):].encode("ascii")
        else:
            # A hash from before pre-hashing: bcrypt of the password itself, never over 72 bytes.
            secret = password.encode("utf-8")
            if len(secret) > 72:
                secret, stored_hash = secret[:72], None
            target = stored_hash.encode("ascii") if stored_hash is not None else self._dummy_hash
        matched = await asyncio.to_thread(bcrypt.checkpw, secret, target)
        return matched and stored_hash is not None


def new_token(tokens: TokenSource) -> str:
    """A fresh bearer token; hand it to the client once and store only :func:`hash_token`."""
    return tokens.token(TOKEN_BYTES)


def new_session_id(tokens: TokenSource) -> str:
    return tokens.token(SESSION_ID_BYTES)


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: what ``sessions.token_hash`` holds and lookups use."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two token hashes."""
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))
