"""What the auth API refuses, as stable codes and typed exceptions.

Every error response has the body ``{"error": {"code", "message", "fields"?}}``; ``code`` is an
:class:`ErrorCode` value. Codes are part of the API: never rename one, only add.

    AuthError                    -> its own status and code
    ├── UsernameTaken            409 username_taken
    ├── InvalidCredentials       401 invalid_credentials (unknown user and wrong password alike)
    ├── MissingToken             401 missing_token
    ├── InvalidToken             401 invalid_token (forged, expired or revoked)
    ├── TooManyAttempts          429 too_many_attempts (with Retry-After)
    ├── WrongPassword            403 invalid_credentials (changing the password: the old one)
    ├── NotFound                 404 not_found (a session that is not among yours)
    ├── WeakPassword             422 validation_failed (the new password breaks the rule)
    ├── InvalidSignature         422 invalid_signature (device keys not signed by their own key)
    ├── KeysConflict             409 keys_conflict (this device already published other keys)
    ├── DeviceKeysMissing        409 device_keys_missing (upload identity keys first)
    ├── NoOneTimeKey             404 no_one_time_key (the device has none left, or is gone)
    ├── UnsupportedMediaType     415 unsupported_media_type
    └── RoomRefused              404 room_not_found, 422 room_name_invalid / room_topic_too_long,
                                 503 unavailable (services/auth/rooms.py)

Validation, parsing, routing and internal failures are mapped to codes in ``api/handlers.py``.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class ErrorCode(StrEnum):
    #: A field is missing, extra, or breaks a rule (``fields`` says which and why).
    VALIDATION_FAILED = "validation_failed"
    #: The body is not JSON.
    MALFORMED_JSON = "malformed_json"
    #: The body is not UTF-8.
    INVALID_ENCODING = "invalid_encoding"
    #: The body is not ``application/json``.
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    BAD_REQUEST = "bad_request"
    USERNAME_TAKEN = "username_taken"
    INVALID_CREDENTIALS = "invalid_credentials"
    MISSING_TOKEN = "missing_token"
    INVALID_TOKEN = "invalid_token"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    #: The body is larger than ``CHASE_AUTH_MAX_BODY_BYTES`` (413).
    BODY_TOO_LARGE = "body_too_large"
    #: The body did not arrive in time (408).
    REQUEST_TIMEOUT = "request_timeout"
    #: The database does not answer, or the server is at its limit of requests in progress;
    #: the same request may succeed later.
    UNAVAILABLE = "unavailable"
    #: End-to-end encryption (docs/e2ee.md): a signature that does not match the keys.
    INVALID_SIGNATURE = "invalid_signature"
    #: This device already published different identity keys (they never change).
    KEYS_CONFLICT = "keys_conflict"
    #: One-time keys or a backup before the device's identity keys were uploaded.
    DEVICE_KEYS_MISSING = "device_keys_missing"
    #: The device has no one-time key left (or no longer exists).
    NO_ONE_TIME_KEY = "no_one_time_key"
    #: A bug; the response says nothing more, the log does.
    INTERNAL = "internal"
    #: No such group room, or the caller is not a member of it (one answer for both).
    ROOM_NOT_FOUND = "room_not_found"
    #: A room name that is empty, blank or over the limit.
    ROOM_NAME_INVALID = "room_name_invalid"
    #: A room topic over the limit.
    ROOM_TOPIC_TOO_LONG = "room_topic_too_long"


class FieldError(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Dotted location, e.g. ``body.username`` or ``query.limit``.
    field: str
    message: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ErrorCode
    message: str
    fields: list[FieldError] | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error: ErrorDetail


class AuthError(Exception):
    """A client-facing failure: the handler turns it into ``status`` and an error body."""

    status: int = 400
    code: ErrorCode = ErrorCode.BAD_REQUEST
    message: str = "The request was refused."

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)

    @property
    def headers(self) -> dict[str, str]:
        return {}


class UsernameTaken(AuthError):
    status = 409
    code = ErrorCode.USERNAME_TAKEN
    message = "That username is taken (names are compared without regard to letter case)."


class InvalidCredentials(AuthError):
    status = 401
    code = ErrorCode.INVALID_CREDENTIALS
    # One message whatever the cause, so a caller cannot learn which names exist.
    message = "Wrong username or password."


class _BearerError(AuthError):
    status = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class MissingToken(_BearerError):
    code = ErrorCode.MISSING_TOKEN
    message = "This needs a session token: send 'Authorization: Bearer <token>'."


class InvalidToken(_BearerError):
    code = ErrorCode.INVALID_TOKEN
    message = "The session token is invalid, expired or revoked: log in again."

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class TooManyAttempts(AuthError):
    status = 429
    code = ErrorCode.TOO_MANY_ATTEMPTS

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"Too many failed logins: try again in {self.retry_after} s.")

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class WrongPassword(AuthError):
    """The current password given to change it is wrong (403: the token itself is fine)."""

    status = 403
    code = ErrorCode.INVALID_CREDENTIALS
    message = "The current password is wrong."


class NotFound(AuthError):
    status = 404
    code = ErrorCode.NOT_FOUND
    message = "No such session among yours."


class WeakPassword(AuthError):
    """The new password breaks the password rule (chase.passwords); 422 like any bad field."""

    status = 422
    code = ErrorCode.VALIDATION_FAILED


class UnsupportedMediaType(AuthError):
    status = 415
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE
    message = "Send the body as JSON with 'Content-Type: application/json'."


class RoomRefused(AuthError):
    """A group room request refused by the store (``services.auth.rooms``)."""

    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class InvalidSignature(AuthError):
    status = 422
    code = ErrorCode.INVALID_SIGNATURE
    message = "The signature does not match these keys."


class KeysConflict(AuthError):
    status = 409
    code = ErrorCode.KEYS_CONFLICT
    message = "This device already published different identity keys; log in again for a new device."


class DeviceKeysMissing(AuthError):
    status = 409
    code = ErrorCode.DEVICE_KEYS_MISSING
    message = "Upload this device's identity keys first (PUT /api/v1/devices/current)."


class NoOneTimeKey(AuthError):
    status = 404
    code = ErrorCode.NO_ONE_TIME_KEY
    message = "That device has no one-time key left, or no longer exists."
