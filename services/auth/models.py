"""Request and response bodies of the auth API.

Create models come in, Public models go out: no response model has a password or hash field,
so a hash cannot leave the service by accident. This module imports only pydantic and
``chase.schemas``, so clients (CLI, desktop) can use it without the server's dependencies.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from chase import passwords
from chase.schemas import UserRef
from chase.text import has_lone_surrogate

#: Names that can log in: every name ever accepted (the lookup at login uses it).
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
#: Names a new account may take: 3-32 characters, ASCII letters and digits in runs joined by
#: single '_', '.' or '-' (so no '...', no '-x' that reads as a command option, no 'a__b').
NEW_USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9]+(?:[_.-][A-Za-z0-9]+)*$")
USERNAME_MIN_CHARS = 3
DEVICE_MAX_CHARS = 64
USERNAME_MAX_CHARS = 32
PASSWORD_MIN_CHARS = passwords.MIN_CHARS
PASSWORD_MAX_CHARS = passwords.MAX_CHARS
USERNAME_RULE = (
    "A username is 3 to 32 characters: ASCII letters and digits, joined by single '_', '.' or '-' "
    "(it starts and ends with a letter or digit)."
)


def _text(value: str) -> str:
    """Refuse strings that are not Unicode text (a JSON ``\\ud800`` escape decodes to one)."""
    if has_lone_surrogate(value):
        raise PydanticCustomError("string_unicode", "This must be valid Unicode text (it has a lone surrogate).")
    return value


def check_username(value: str) -> str:
    """Accept the rule of :data:`NEW_USERNAME_PATTERN`.

    ASCII only on purpose: uniqueness is enforced on the database's ``lower(username)``, and
    SQLite's lower() folds only ASCII, so non-ASCII names would compare differently on SQLite
    and MySQL (and invite look-alike names).
    """
    if not (USERNAME_MIN_CHARS <= len(value) <= USERNAME_MAX_CHARS and NEW_USERNAME_PATTERN.fullmatch(value)):
        raise PydanticCustomError("username_invalid", USERNAME_RULE)
    return value


def check_password(value: str) -> str:
    """Accept what :func:`chase.passwords.problem` accepts (length, bytes, not a common one)."""
    _text(value)
    problem = passwords.problem(value)
    if problem is not None:
        raise PydanticCustomError(f"password_{problem.code}", problem.message)
    return value


def _check_login_password(value: str) -> str:
    return _text(value)


# The rules in the OpenAPI schema too, exactly (json_schema_extra documents them without
# replacing the validators' own, clearer error messages).
Username = Annotated[
    str,
    AfterValidator(check_username),
    Field(
        description=USERNAME_RULE,
        json_schema_extra={
            "pattern": NEW_USERNAME_PATTERN.pattern,
            "minLength": USERNAME_MIN_CHARS,
            "maxLength": USERNAME_MAX_CHARS,
        },
    ),
]
NewPassword = Annotated[
    str,
    AfterValidator(check_password),
    Field(description=passwords.RULE,
          json_schema_extra={"minLength": PASSWORD_MIN_CHARS, "maxLength": PASSWORD_MAX_CHARS}),
]
#: At login only the byte limit applies: the rules for new passwords may change over time.
LoginName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_text)]
LoginPassword = Annotated[
    str,
    Field(min_length=1, max_length=PASSWORD_MAX_CHARS),
    AfterValidator(_check_login_password),
]


#: A device label: printable text, with no control, format or direction character (the same
#: pattern in the OpenAPI schema; checked again on output by whoever shows it).
DEVICE_PATTERN = re.compile(
    r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    r"\ufeff\ufff9-\ufffb]+$"
)


def _device(value: str) -> str:
    _text(value)
    if not DEVICE_PATTERN.fullmatch(value):
        raise PydanticCustomError("device_invalid", "A device label is printable text (no control characters).")
    return value


DeviceLabel = Annotated[
    str,
    Field(min_length=1, max_length=DEVICE_MAX_CHARS, json_schema_extra={"pattern": DEVICE_PATTERN.pattern}),
    AfterValidator(_device),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class _Out(BaseModel):
    # Clients ignore fields a newer server adds; the server's own output is typed anyway.
    model_config = ConfigDict(extra="ignore", frozen=True)


class UserCreate(_In):
    username: Username
    password: NewPassword

    @model_validator(mode="after")
    def _password_is_not_the_name(self) -> UserCreate:
        found = passwords.problem(self.password, self.username)
        if found is not None:
            raise PydanticCustomError(f"password_{found.code}", found.message)
        return self


class LoginRequest(_In):
    username: LoginName
    password: LoginPassword
    #: Shown in the list of sessions; defaults to the client's User-Agent.
    device: DeviceLabel | None = None


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


class SessionPublic(_Out):
    """One of the user's live sessions, as listed to them (never the token or its hash)."""

    session_id: str
    #: The label given at login, or the client's User-Agent; None when neither was sent.
    device: str | None
    created_at: datetime
    #: When the token was last used (to within a minute).
    last_seen_at: datetime | None
    expires_at: datetime
    #: True for the session whose token made this request.
    current: bool


class SessionList(_Out):
    sessions: list[SessionPublic]


class PasswordChange(_In):
    #: The password in force now: a stolen token alone cannot change it.
    old_password: LoginPassword
    new_password: NewPassword
