"""Stable error codes and close codes of the gateway's WebSocket boundary.

The whole tree at a glance::

    ErrorCode (str enum, sent in ErrorFrame.code; the connection stays open)
        invalid_frame      not JSON, not UTF-8, a missing/extra/ill-typed field
        unknown_type       JSON with a "type" the protocol does not know
        body_empty         empty or whitespace-only body
        body_too_long      more than Limits.max_body_chars characters
        frame_too_large    more than Limits.max_frame_bytes bytes
        rate_limited       too many frames; retryable once the bucket refills
        encrypted_invalid  an encrypted send on the public room, with plaintext, or too large
        recipient_unknown  the private message's recipient does not exist (from the worker)
        sender_unknown     the sender's account is gone (from the worker)
        rejected           the store failed on this message every time it tried; never stored
        unavailable        broker or database down; retryable, nothing was acknowledged
        not_found          the thing asked for does not exist
        forbidden          not yours to see
        room_not_found     no such group room, or not a member of it (one answer for both)
        room_forbidden     a member whose role does not allow the change
        room_name_invalid  an empty, blank or over-long room name
        room_topic_too_long a topic over the limit
        room_full          the room has as many members as a room may
        user_unknown       the user to invite does not exist
        already_member     inviting or joining someone who is already a member
        already_invited    inviting someone who is already invited
        not_member         removing or changing the role of someone who is not a member
        room_owner         the owner cannot leave, be removed or be demoted: hand over first
        internal           a bug on our side; the details are in the server log

    CloseCode (int enum, the WebSocket close code; the connection ends)
        1001 going away        the gateway is shutting down; reconnect elsewhere or later
        1008 policy violation  sustained flooding after rate_limited errors
        1013 try again later   the auth service could not be asked; reconnect later
        4008 too slow          the client did not read its frames; its outbox overflowed
        4429 too many          the user already has max_connections_per_user connections here
        4401 unauthorized      missing, invalid, expired or revoked token; log in again

Never rename a code, only add: clients switch on them.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    INVALID_FRAME = "invalid_frame"
    UNKNOWN_TYPE = "unknown_type"
    BODY_EMPTY = "body_empty"
    BODY_TOO_LONG = "body_too_long"
    #: An end-to-end encrypted send that breaks the rule (public room, plaintext beside the
    #: ciphertext, or ciphertext over MAX_CIPHERTEXT_CHARS): chase.schemas.encrypted_problem.
    ENCRYPTED_INVALID = "encrypted_invalid"
    FRAME_TOO_LARGE = "frame_too_large"
    RATE_LIMITED = "rate_limited"
    RECIPIENT_UNKNOWN = "recipient_unknown"
    SENDER_UNKNOWN = "sender_unknown"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    ROOM_NOT_FOUND = "room_not_found"
    ROOM_FORBIDDEN = "room_forbidden"
    ROOM_NAME_INVALID = "room_name_invalid"
    ROOM_TOPIC_TOO_LONG = "room_topic_too_long"
    ROOM_FULL = "room_full"
    USER_UNKNOWN = "user_unknown"
    ALREADY_MEMBER = "already_member"
    ALREADY_INVITED = "already_invited"
    NOT_MEMBER = "not_member"
    ROOM_OWNER = "room_owner"
    INTERNAL = "internal"


#: Codes the client may retry with the very same frame later.
RETRYABLE = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE})


class CloseCode(IntEnum):
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    TRY_AGAIN_LATER = 1013
    TOO_SLOW = 4008
    TOO_MANY_CONNECTIONS = 4429
    UNAUTHORIZED = 4401


#: Close reasons, as sent: short, stable, and safe to show a user.
REASON_INVALID_TOKEN = "invalid or expired token"
REASON_SESSION_REVOKED = "session revoked"
REASON_AUTH_UNAVAILABLE = "authentication service unavailable, try again later"
REASON_TOO_SLOW = "too slow: outbox overflowed"
REASON_FLOODING = "too many frames"
REASON_TOO_MANY_CONNECTIONS = "too many connections for this user"
REASON_GATEWAY_FULL = "this gateway is full, try again later"
REASON_SHUTDOWN = "gateway shutting down"

#: Codes the persistence service puts in MessageRejected / QueryFailed, mapped to ours.
#: Anything unknown becomes ``internal``: a worker's private vocabulary never leaks.
UPSTREAM_CODES: dict[str, ErrorCode] = {
    "recipient_unknown": ErrorCode.RECIPIENT_UNKNOWN,
    "sender_unknown": ErrorCode.SENDER_UNKNOWN,
    "body_empty": ErrorCode.BODY_EMPTY,
    "body_too_long": ErrorCode.BODY_TOO_LONG,
    "encrypted_invalid": ErrorCode.ENCRYPTED_INVALID,
    "rejected": ErrorCode.REJECTED,
    "bad_query": ErrorCode.INVALID_FRAME,
    "store_unavailable": ErrorCode.UNAVAILABLE,
    "not_found": ErrorCode.NOT_FOUND,
    "forbidden": ErrorCode.FORBIDDEN,
    "room_not_found": ErrorCode.ROOM_NOT_FOUND,
    "room_forbidden": ErrorCode.ROOM_FORBIDDEN,
    "room_name_invalid": ErrorCode.ROOM_NAME_INVALID,
    "room_topic_too_long": ErrorCode.ROOM_TOPIC_TOO_LONG,
    "room_full": ErrorCode.ROOM_FULL,
    "user_unknown": ErrorCode.USER_UNKNOWN,
    "already_member": ErrorCode.ALREADY_MEMBER,
    "already_invited": ErrorCode.ALREADY_INVITED,
    "not_member": ErrorCode.NOT_MEMBER,
    "room_owner": ErrorCode.ROOM_OWNER,
}


def from_upstream(code: str) -> ErrorCode:
    """Our code for a code the persistence service sent."""
    return UPSTREAM_CODES.get(code, ErrorCode.INTERNAL)
