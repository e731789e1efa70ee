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
    #: A message to a group room the sender is not a member of (or that does not exist: the
    #: two answer the same, so nobody learns which rooms exist).
    ROOM_NOT_FOUND = "room_not_found"


class RoomErrorCode(StrEnum):
    """What a membership change or a room read is refused with (``RoomCommandResult.code``,
    ``QueryFailed.code``)."""

    #: No such room, or the asker is not a member of it: the same answer for both.
    ROOM_NOT_FOUND = "room_not_found"
    #: A member whose role does not allow it (e.g. a member removing someone, an admin renaming).
    ROOM_FORBIDDEN = "room_forbidden"
    #: The name is empty, blank, or longer than the limit.
    ROOM_NAME_INVALID = "room_name_invalid"
    #: The topic is longer than the limit.
    ROOM_TOPIC_TOO_LONG = "room_topic_too_long"
    #: The room has as many members as a room may have.
    ROOM_FULL = "room_full"
    #: The user to invite does not exist.
    USER_UNKNOWN = "user_unknown"
    #: Inviting or joining someone who is already a member.
    ALREADY_MEMBER = "already_member"
    #: Inviting someone who is already invited.
    ALREADY_INVITED = "already_invited"
    #: Removing, promoting or demoting someone who is not a member.
    NOT_MEMBER = "not_member"
    #: The owner cannot leave, be removed or be demoted: they hand ownership over first (and
    #: there is only ever one owner: giving the role "owner" hands it over).
    ROOM_OWNER = "room_owner"
    #: The actor's account no longer exists.
    SENDER_UNKNOWN = "sender_unknown"


class QueryErrorCode(StrEnum):
    #: The request was not a history or sync query.
    BAD_QUERY = "bad_query"
    #: The database failed; the caller may ask again later.
    STORE_UNAVAILABLE = "store_unavailable"
    #: A bug on our side; the details are in the persistence service's log only.
    INTERNAL = "internal"
