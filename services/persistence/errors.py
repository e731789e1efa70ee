"""Stable codes for what the persistence service refuses or fails to do.

``RejectCode`` values travel in ``MessageRejected.code`` (the gateway passes them on to the
sender in an error frame); ``QueryErrorCode`` values travel in ``QueryFailed.code``. Both are
part of the protocol: never rename one, only add.
"""

from __future__ import annotations

from enum import StrEnum


class RejectCode(StrEnum):
    #: The recipient of a private message does not exist (never did, or was deleted).
    RECIPIENT_UNKNOWN = "recipient_unknown"
    #: The sender's account no longer exists.
    SENDER_UNKNOWN = "sender_unknown"
    #: The body is empty or only whitespace.
    BODY_EMPTY = "body_empty"
    #: The body is longer than ``max_body_chars``.
    BODY_TOO_LONG = "body_too_long"
    #: An end-to-end encrypted message that breaks ``chase.schemas.encrypted_problem``.
    ENCRYPTED_INVALID = "encrypted_invalid"
    #: The store failed on this message on every attempt the queue allows (``x-delivery-limit``)
    #: for a reason that is not an outage: it will never be stored.
    REJECTED = "rejected"


class QueryErrorCode(StrEnum):
    #: The request was not a history or sync query.
    BAD_QUERY = "bad_query"
    #: The database failed; the caller may ask again later.
    STORE_UNAVAILABLE = "store_unavailable"
    #: A bug on our side; the details are in the persistence service's log only.
    INTERNAL = "internal"
