"""Client errors in plain words, for people rather than logs."""

from __future__ import annotations

from client.core.errors import ClientError, ClientErrorCode, InvalidInput

_PLAIN = {
    ClientErrorCode.SERVER_UNREACHABLE:
        "The server cannot be reached. Check the address and that the server is running.",
    ClientErrorCode.CERTIFICATE_NOT_TRUSTED:
        "The server's certificate is not trusted, so ChaSe did not connect. "
        "Check the address, or the CA file (certs/ca.pem for a local server).",
    ClientErrorCode.INVALID_CREDENTIALS: "Wrong username or password.",
    ClientErrorCode.USERNAME_TAKEN: "That username is taken. Please choose another one.",
    ClientErrorCode.TOO_MANY_ATTEMPTS: "Too many attempts. Wait a minute, then try again.",
    ClientErrorCode.SESSION_EXPIRED: "Your session has ended. Please log in again.",
    ClientErrorCode.NOT_CONNECTED: "Not connected to the server right now.",
}


def plain_words(error: ClientError) -> str:
    """What to show the user for ``error``: one or two short sentences."""
    if isinstance(error, InvalidInput):
        if error.fields:
            # "body.username" -> "Username"; the server's own sentence follows.
            return "\n".join(f"{name.rsplit('.', 1)[-1].capitalize()}: {why}" for name, why in error.fields.items())
        return error.message
    return _PLAIN.get(error.code, error.message)
