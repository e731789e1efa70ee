"""Errors the client core raises, with stable codes the UIs turn into plain words.

Tree::

    ClientError                 base; ``code`` is a ClientErrorCode
    ├── ServerUnreachable       no TCP/TLS connection to the server (retry later)
    ├── CertificateNotTrusted   the server's certificate does not verify against the CA
    ├── InvalidCredentials      login refused: unknown user or wrong password (same for both)
    ├── UsernameTaken           register refused: the name exists in some letter case
    ├── InvalidInput            the server rejected a field (``fields`` names them)
    ├── TooManyAttempts         the server throttles this login
    ├── SessionExpired          the token is expired or revoked: log in again
    ├── MessageRejected         a message cannot be sent as it is (too long, empty)
    ├── NotConnected            a request needs a live connection and there is none
    └── ProtocolFailure         the server answered something the client cannot use
"""

from __future__ import annotations

from enum import StrEnum


class ClientErrorCode(StrEnum):
    SERVER_UNREACHABLE = "server_unreachable"
    CERTIFICATE_NOT_TRUSTED = "certificate_not_trusted"
    INVALID_CREDENTIALS = "invalid_credentials"
    USERNAME_TAKEN = "username_taken"
    INVALID_INPUT = "invalid_input"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    SESSION_EXPIRED = "session_expired"
    MESSAGE_REJECTED = "message_rejected"
    NOT_CONNECTED = "not_connected"
    PROTOCOL_FAILURE = "protocol_failure"


class ClientError(Exception):
    code: ClientErrorCode = ClientErrorCode.PROTOCOL_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServerUnreachable(ClientError):
    code = ClientErrorCode.SERVER_UNREACHABLE


class CertificateNotTrusted(ClientError):
    code = ClientErrorCode.CERTIFICATE_NOT_TRUSTED


class InvalidCredentials(ClientError):
    code = ClientErrorCode.INVALID_CREDENTIALS


class UsernameTaken(ClientError):
    code = ClientErrorCode.USERNAME_TAKEN


class InvalidInput(ClientError):
    code = ClientErrorCode.INVALID_INPUT

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        #: Field name -> what is wrong with it, when the server said.
        self.fields = fields or {}


class TooManyAttempts(ClientError):
    code = ClientErrorCode.TOO_MANY_ATTEMPTS


class SessionExpired(ClientError):
    code = ClientErrorCode.SESSION_EXPIRED


class MessageRejected(ClientError):
    code = ClientErrorCode.MESSAGE_REJECTED


class NotConnected(ClientError):
    code = ClientErrorCode.NOT_CONNECTED


class ProtocolFailure(ClientError):
    code = ClientErrorCode.PROTOCOL_FAILURE
