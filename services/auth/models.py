"""Request and response bodies of the auth API.

Create models come in, Public models go out: no response model has a password or hash field,
so a hash cannot leave the service by accident. This module imports only pydantic and
``chase.schemas``, so clients (CLI, desktop) can use it without the server's dependencies.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from chase.schemas import UserRef

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
PASSWORD_MIN_CHARS = 8
#: bcrypt only reads the first 72 bytes of a password; see :func:`check_password`.
PASSWORD_MAX_BYTES = 72


def check_username(value: str) -> str:
    """Accept 3-32 ASCII letters, digits, ``_``, ``.`` or ``-``.

    ASCII only on purpose: uniqueness is enforced on the database's ``lower(username)``, and
    SQLite's lower() folds only ASCII, so non-ASCII names would compare differently on SQLite
    and MySQL (and invite look-alike names).
    """
    if not USERNAME_PATTERN.fullmatch(value):
        raise PydanticCustomError(
            "username_invalid",
            "A username is 3 to 32 characters: ASCII letters, digits, '_', '.' or '-'.",
        )
    return value


def check_password(value: str) -> str:
    """Accept at least 8 characters and at most 72 bytes in UTF-8.

    bcrypt ignores everything after the 72nd byte, so a longer password would be silently
    truncated (two passwords sharing 72 bytes would both work). We refuse it with a clear
    reason instead. 72 bytes is 72 ASCII characters but fewer of most other scripts (an
    emoji is 4 bytes).
    """
    if len(value) < PASSWORD_MIN_CHARS:
        raise PydanticCustomError(
            "password_too_short", "A password needs at least {min} characters.", {"min": PASSWORD_MIN_CHARS}
        )
    _check_password_bytes(value)
    return value


def _check_password_bytes(value: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > PASSWORD_MAX_BYTES:
        raise PydanticCustomError(
            "password_too_long",
            "A password can be at most {max} bytes in UTF-8 (bcrypt's limit); this one is longer.",
            {"max": PASSWORD_MAX_BYTES},
        )
    return value


# The rules in the OpenAPI schema too (json_schema_extra documents them without replacing
# the validators' own, clearer error messages).
Username = Annotated[
    str,
    AfterValidator(check_username),
    Field(json_schema_extra={"pattern": USERNAME_PATTERN.pattern, "minLength": 3, "maxLength": 32}),
]
NewPassword = Annotated[
    str,
    AfterValidator(check_password),
    Field(
        description=f"At least {PASSWORD_MIN_CHARS} characters and at most {PASSWORD_MAX_BYTES} bytes in UTF-8",
        json_schema_extra={"minLength": PASSWORD_MIN_CHARS, "maxLength": PASSWORD_MAX_BYTES},
    ),
]
#: At login only the byte limit applies: the rules for new passwords may change over time.
LoginName = Annotated[str, Field(min_length=1, max_length=64)]
LoginPassword = Annotated[str, Field(min_length=1), AfterValidator(_check_password_bytes)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class _Out(BaseModel):
    # Clients ignore fields a newer server adds; the server's own output is typed anyway.
    model_config = ConfigDict(extra="ignore", frozen=True)


class UserCreate(_In):
    username: Username
    password: NewPassword


class LoginRequest(_In):
    username: LoginName
    password: LoginPassword


class UserPublic(_Out):
    id: int
    username: str
    created_at: datetime


class SessionCreated(_Out):
    """A new login. ``token`` is the bearer secret: shown once, stored only as a hash."""

    token: str
    session_id: str
    expires_at: datetime
    user: UserRef


class SessionInfo(_Out):
    """What a valid token stands for (the token check other services call)."""

    session_id: str
    user: UserRef
    expires_at: datetime


class UserPage(_Out):
    """One page of the directory, by ascending id; ask again with ``after_id=next_after_id``."""

    users: list[UserRef]
    next_after_id: int | None


class Health(_Out):
    status: str
