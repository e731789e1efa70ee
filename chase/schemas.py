"""The one schema module for the wire (client <-> gateway) and the bus (service <-> service).

Every frame and every event is a pydantic model with ``extra="forbid"`` and a ``type``
literal, so a parser built from the unions below rejects anything it does not know. No
``dict[str, Any]`` crosses a socket or a queue: encode with :func:`encode`, decode with
:func:`decode_client_frame`, :func:`decode_server_frame` or :func:`decode_event`.

``docs/protocol.md`` documents the wire frames for people writing other clients.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

PROTOCOL_VERSION = 1

#: The client's own id for a message, unique per sender; resending it is a no-op.
ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
#: The largest id either database holds (a signed 64-bit integer on SQLite and MySQL alike).
#: Every id a client sends is bounded by it, so nothing out of range reaches a query.
MAX_ID = 2**63 - 1
UserId = Annotated[int, Field(ge=1, le=MAX_ID)]
MessageId = Annotated[int, Field(ge=1, le=MAX_ID)]
#: Page sizes are capped by the server (``MAX_PAGE``); a client may ask for fewer.
PageSize = Annotated[int, Field(ge=1, le=200)]
MAX_PAGE = 200
RoomId = Annotated[int, Field(ge=1, le=MAX_ID)]
#: A member's role in a group room; "owner" is one person, handed over with ``room_role``.
RoomRole = Literal["owner", "admin", "member"]
#: Who reads a room's earlier messages: "joined" (from one's joining on) or "all".
HistoryVisibility = Literal["joined", "all"]
#: What a membership event says happened (see ``RoomEvent``).
RoomAction = Literal["created", "invited", "joined", "left", "removed", "renamed", "topic", "role"]


class Model(BaseModel):
    # strict: "5" is not an id and "true" is not a flag; JSON strings still parse as datetimes.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- shared value objects -------------------------------------------------------------------


class UserRef(Model):
    id: UserId
    username: str


class RoomEvent(Model):
    """What a room's membership event is about; the message's sender is who did it.

    ``user`` is whom it concerns (invited, joined, left, removed, given ``role``); ``name`` a
    room's new name (created, renamed); ``topic`` its new topic (None: cleared).
    """

    action: RoomAction
    user: UserRef | None = None
    name: str | None = None
    topic: str | None = None
    role: RoomRole | None = None


# --- end-to-end encrypted private messages (docs/e2ee.md) -----------------------------------

#: The whole encrypted envelope, as compact JSON, is at most this many characters: it bounds
#: both the text of an encrypted message and the number of devices it is encrypted for.
MAX_CIPHERTEXT_CHARS = 48_000
#: Devices one message may be encrypted for (both people's devices together).
MAX_DEVICES_PER_MESSAGE = 40
_B64 = r"^[A-Za-z0-9+/]+={0,2}$"
Base64 = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CIPHERTEXT_CHARS, pattern=_B64)]
DeviceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
PublicKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{43}$")]


class OlmCiphertext(Model):
    """The message encrypted with Olm for one device (``type`` 0: pre-key message, 1: normal)."""

    device_id: DeviceId
    type: Literal[0, 1]
    body: Base64


class BackupCiphertext(Model):
    """The message encrypted to one user's key-backup public key (a recovery key reads it)."""

    user_id: UserId
    public_key: PublicKey
    ciphertext: Base64
    mac: Base64
    ephemeral_key: Base64


class Encrypted(Model):
    """An end-to-end encrypted private message: the only content of a ``send`` whose ``body``
    is empty. The services route and store it without being able to read it."""

    algorithm: Literal["chase.olm.v1"] = "chase.olm.v1"
    sender_device: DeviceId
    #: The sending device's Curve25519 identity key (receivers check it is the listed one).
    sender_key: PublicKey
    recipients: list[OlmCiphertext] = Field(max_length=MAX_DEVICES_PER_MESSAGE)
    backups: list[BackupCiphertext] = Field(default_factory=list, max_length=2)


def encrypted_problem(body: str, ciphertext: Encrypted | None, recipient_id: int | None) -> str | None:
    """Why an encrypted message is refused (None when it is fine, or is no encrypted message).

    The same rule in the gateway and the store: ciphertext only for a private message, never
    beside plaintext, and within :data:`MAX_CIPHERTEXT_CHARS`."""
    if ciphertext is None:
        return None
    if recipient_id is None:
        return "the public room is not end-to-end encrypted: send it without ciphertext"
    if body != "":
        return "an encrypted message carries no plaintext: its body must be empty"
    size = len(ciphertext.model_dump_json())
    if size > MAX_CIPHERTEXT_CHARS:
        return f"the ciphertext is {size} characters; the limit is {MAX_CIPHERTEXT_CHARS}"
    return None


class ChatMessage(Model):
    """A stored message: it has a database id, so it is in history."""

    id: MessageId
    sender: UserRef
    #: ``None`` for the public room, else the other participant of a private conversation.
    recipient_id: UserId | None
    body: str
    created_at: datetime
    client_msg_id: ClientMsgId
    #: The id of the message before this one in the same conversation (``None`` for the
    #: first). A client that holds every message up to its sync cursor and receives one whose
    #: ``prev_id`` is above that cursor and unknown to it has missed something: it syncs.
    prev_id: MessageId | None = None
    #: The group room it was posted in (``recipient_id`` is then None); None otherwise.
    room_id: RoomId | None = None
    #: Set on a room's membership events ("alice added bob"); ``body`` then reads as a sentence.
    event: RoomEvent | None = None
    #: An end-to-end encrypted message (``body`` is then empty); None for a plain one.
    ciphertext: Encrypted | None = None


class RoomInfo(Model):
    """A group room as one user sees it; ``role`` is that user's ("invited": not joined yet)."""

    id: RoomId
    name: str
    topic: str | None = None
    owner: UserRef
    #: True: anyone may join without an invitation.
    open: bool
    history: HistoryVisibility
    member_count: int
    role: RoomRole | Literal["invited"] | None = None


class RoomMember(Model):
    user: UserRef
    role: RoomRole | Literal["invited"]


# --- client -> gateway frames ---------------------------------------------------------------


class SendFrame(Model):
    """Post ``body`` to the public room (``recipient_id`` and ``room_id`` null), to one user,
    or to a group room the sender is a member of (at most one of the two)."""

    type: Literal["send"] = "send"
    client_msg_id: ClientMsgId
    recipient_id: UserId | None = None
    body: str
    room_id: RoomId | None = None
    #: End-to-end encrypted content for a private message; ``body`` must then be ``""``.
    ciphertext: Encrypted | None = None

    @model_validator(mode="after")
    def _one_destination(self) -> SendFrame:
        if self.recipient_id is not None and self.room_id is not None:
            raise ValueError("give recipient_id or room_id, not both")
        return self


class HistoryFrame(Model):
    """One page of a conversation, newest first, strictly before ``before_id`` if given."""

    type: Literal["history"] = "history"
    request_id: RequestId | None = None
    #: ``None`` for the public room, else the other participant.
    with_user_id: UserId | None = None
    before_id: MessageId | None = None
    limit: PageSize = 50
    #: A group room instead (then ``with_user_id`` must be null).
    room_id: RoomId | None = None

    @model_validator(mode="after")
    def _one_conversation(self) -> HistoryFrame:
        if self.with_user_id is not None and self.room_id is not None:
            raise ValueError("give with_user_id or room_id, not both")
        return self


class SyncFrame(Model):
    """Everything the user may see with an id greater than ``after_id``, oldest first."""

    type: Literal["sync"] = "sync"
    request_id: RequestId | None = None
    after_id: Annotated[int, Field(ge=0, le=MAX_ID)] = 0
    limit: PageSize = MAX_PAGE


class PingFrame(Model):
    type: Literal["ping"] = "ping"
    request_id: RequestId | None = None


RoomName = Annotated[str, StringConstraints(max_length=1000)]
RoomTopic = Annotated[str, StringConstraints(max_length=5000)]


class RoomCreateFrame(Model):
    """Create a group room; the sender is its owner and first member. Answered with ``room``.

    Name and topic are checked against the server's limits (``room_name_invalid``,
    ``room_topic_too_long``); the bounds here only cap what a frame may carry.
    """

    type: Literal["room_create"] = "room_create"
    request_id: RequestId | None = None
    name: RoomName
    topic: RoomTopic | None = None
    open: bool = False
    history: HistoryVisibility = "joined"


class RoomInviteFrame(Model):
    """Invite ``user_id`` (any member may); they join with ``room_join``."""

    type: Literal["room_invite"] = "room_invite"
    request_id: RequestId | None = None
    room_id: RoomId
    user_id: UserId


class RoomJoinFrame(Model):
    """Join a room one was invited to, or an open room."""

    type: Literal["room_join"] = "room_join"
    request_id: RequestId | None = None
    room_id: RoomId


class RoomLeaveFrame(Model):
    """Leave a room (or decline an invitation). The owner hands ownership over first."""

    type: Literal["room_leave"] = "room_leave"
    request_id: RequestId | None = None
    room_id: RoomId


class RoomRemoveFrame(Model):
    """Remove a member or withdraw an invitation (admins and the owner; only the owner
    removes an admin)."""

    type: Literal["room_remove"] = "room_remove"
    request_id: RequestId | None = None
    room_id: RoomId
    user_id: UserId


class RoomUpdateFrame(Model):
    """Rename the room and/or set its topic (the owner only); a topic of "" clears it."""

    type: Literal["room_update"] = "room_update"
    request_id: RequestId | None = None
    room_id: RoomId
    name: RoomName | None = None
    topic: RoomTopic | None = None


class RoomRoleFrame(Model):
    """Make a member an admin or a plain member, or hand ownership over (``owner``: the
    sender becomes an admin). The owner only."""

    type: Literal["room_role"] = "room_role"
    request_id: RequestId | None = None
    room_id: RoomId
    user_id: UserId
    role: RoomRole


class RoomsFrame(Model):
    """The rooms the sender is in or invited to; answered with ``room_list``."""

    type: Literal["rooms"] = "rooms"
    request_id: RequestId | None = None


class RoomMembersFrame(Model):
    """A room's members and invitations (members only); answered with ``room_members``."""

    type: Literal["room_members"] = "room_members"
    request_id: RequestId | None = None
    room_id: RoomId


RoomRequestFrame = (
    RoomCreateFrame
    | RoomInviteFrame
    | RoomJoinFrame
    | RoomLeaveFrame
    | RoomRemoveFrame
    | RoomUpdateFrame
    | RoomRoleFrame
)

ClientFrame = Annotated[
    SendFrame
    | HistoryFrame
    | SyncFrame
    | PingFrame
    | RoomCreateFrame
    | RoomInviteFrame
    | RoomJoinFrame
    | RoomLeaveFrame
    | RoomRemoveFrame
    | RoomUpdateFrame
    | RoomRoleFrame
    | RoomsFrame
    | RoomMembersFrame,
    Field(discriminator="type"),
]


# --- gateway -> client frames ---------------------------------------------------------------


class Limits(Model):
    max_body_chars: int
    max_frame_bytes: int
    rate_per_second: float
    rate_burst: int
    max_page: int = MAX_PAGE


class HelloFrame(Model):
    """First frame on every connection: who you are, the limits, and who is online."""

    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    user: UserRef
    session_id: str
    limits: Limits
    online_user_ids: list[UserId]


class AckFrame(Model):
    """The message is committed: ``message_id`` is its place in history.

    ``duplicate`` is true when this ``client_msg_id`` had been stored before; the ids are the
    original ones and nothing new was stored.
    """

    type: Literal["ack"] = "ack"
    client_msg_id: ClientMsgId
    message_id: MessageId
    created_at: datetime
    duplicate: bool = False


class MessageFrame(Model):
    type: Literal["message"] = "message"
    message: ChatMessage


class PresenceFrame(Model):
    """Who came online and who went offline since the last ``presence`` frame: the changes of a
    short window gathered into one frame (a user is in at most one of the two lists, with their
    latest state), so that N clients connecting at once cost N frames each, not N x N."""

    type: Literal["presence"] = "presence"
    online: list[UserRef] = Field(default_factory=list)
    offline: list[UserRef] = Field(default_factory=list)


class HistoryPageFrame(Model):
    type: Literal["history_page"] = "history_page"
    request_id: RequestId | None = None
    with_user_id: UserId | None = None
    room_id: RoomId | None = None
    #: Newest first.
    messages: list[ChatMessage]
    has_more: bool


class SyncPageFrame(Model):
    type: Literal["sync_page"] = "sync_page"
    request_id: RequestId | None = None
    #: Oldest first; ask again with ``after_id`` = the last id while ``has_more``.
    messages: list[ChatMessage]
    has_more: bool


class PongFrame(Model):
    type: Literal["pong"] = "pong"
    request_id: RequestId | None = None


class ResyncFrame(Model):
    """Live delivery to this connection may have missed messages: sync from your cursor now.

    Sent when the gateway's broker subscription was re-established (events published while it
    was down never reached this gateway). The connection stays open.
    """

    type: Literal["resync"] = "resync"
    reason: str


class RoomFrame(Model):
    """A membership request succeeded: the room as it is now. ``message_id`` is the id of the
    membership event it stored (which also arrives as a ``message``)."""

    type: Literal["room"] = "room"
    request_id: RequestId | None = None
    room: RoomInfo
    message_id: MessageId


class RoomListFrame(Model):
    type: Literal["room_list"] = "room_list"
    request_id: RequestId | None = None
    rooms: list[RoomInfo]


class RoomMemberListFrame(Model):
    type: Literal["room_member_list"] = "room_member_list"
    request_id: RequestId | None = None
    room_id: RoomId
    members: list[RoomMember]


class ErrorFrame(Model):
    """A request failed; ``code`` is stable (see ``services/gateway/errors.py``)."""

    type: Literal["error"] = "error"
    code: str
    message: str
    request_id: RequestId | None = None
    client_msg_id: ClientMsgId | None = None
    #: True when the client may send the same thing again later (e.g. store unavailable).
    retryable: bool = False


ServerFrame = Annotated[
    HelloFrame
    | AckFrame
    | MessageFrame
    | PresenceFrame
    | HistoryPageFrame
    | SyncPageFrame
    | PongFrame
    | ResyncFrame
    | RoomFrame
    | RoomListFrame
    | RoomMemberListFrame
    | ErrorFrame,
    Field(discriminator="type"),
]


# --- bus events -----------------------------------------------------------------------------


class MessageSubmitted(Model):
    """A gateway accepted a send from an authenticated user; the worker will store it."""

    type: Literal["message.submitted"] = "message.submitted"
    sender: UserRef
    recipient_id: UserId | None
    body: str
    client_msg_id: ClientMsgId
    submitted_at: datetime
    room_id: RoomId | None = None

    ciphertext: Encrypted | None = None


#: The most sends one ``MessagesSubmitted`` carries (the worker's default batch size).
MAX_SUBMITTED_PER_EVENT = 200


class MessagesSubmitted(Model):
    """The sends a gateway accepted from any of its connections in one turn of its event loop,
    published as one event on ``message.submitted``: one publish, one confirm, one entry in the
    quorum queue and one delivery to the worker for the group instead of one per send.

    The worker stores each item as if it had come alone (dedupe, its own result); an item that
    fails on its own is published again alone (see ``chase.bus.consumer``). A gateway holds at
    most one item per connection in a group in flight, since a connection awaits its send's
    confirm before it reads its next frame, so the items keep each sender's order. A group of
    one is published as a plain ``MessageSubmitted``, which every worker accepts."""

    type: Literal["messages.submitted"] = "messages.submitted"
    items: list[MessageSubmitted] = Field(min_length=1, max_length=MAX_SUBMITTED_PER_EVENT)


#: What a ``RoomCommand`` asks for (one per membership frame).
RoomOp = Literal["create", "invite", "join", "leave", "remove", "update", "role"]


class RoomCommand(Model):
    """A membership change a gateway accepted from an authenticated user (``actor``).

    Stored by the persistence worker in order with messages (same queue, same writer):
    ``command_id`` is the id of the membership event it stores, unique per actor, so a
    redelivered command stores nothing twice.
    """

    type: Literal["room.command"] = "room.command"
    command_id: ClientMsgId
    actor: UserRef
    op: RoomOp
    room_id: RoomId | None = None
    user_id: UserId | None = None
    name: RoomName | None = None
    topic: RoomTopic | None = None
    open: bool = False
    history: HistoryVisibility = "joined"
    role: RoomRole | None = None
    submitted_at: datetime


class RoomCommandResult(Model):
    """The answer to a ``RoomCommand``, on the actor's own key: ``room`` and ``message_id``
    when it was done, ``code`` and ``reason`` when it was refused."""

    type: Literal["room.result"] = "room.result"
    command_id: ClientMsgId
    actor_id: UserId
    room: RoomInfo | None = None
    message_id: MessageId | None = None
    code: str | None = None
    reason: str | None = None


class MessageStored(Model):
    """Published by the persistence worker only after the COMMIT that stored ``message``."""

    type: Literal["message.stored"] = "message.stored"
    message: ChatMessage
    duplicate: bool = False
    #: True when the sender submitted an already stored message again (a resend): only the
    #: sender's pending send is acknowledged, nobody is shown the message again. Published on
    #: the sender's own key (``routing.message_resent``).
    resend: bool = False


#: The most MessageStored one MessagesStored carries (the worker's largest batch).
MAX_STORED_PER_EVENT = 5000


class MessagesStored(Model):
    """Consecutive ``MessageStored`` of one committed batch that share a routing key, in id
    order, published as one event: one publish, one confirm and one delivery per gateway for
    the run instead of one per message. A gateway handles each item in turn, exactly as if it
    had come alone. The worker publishes a run of one as a plain ``MessageStored``."""

    type: Literal["messages.stored"] = "messages.stored"
    items: list[MessageStored] = Field(min_length=1, max_length=MAX_STORED_PER_EVENT)


class MessageRejected(Model):
    """The worker could not store a submitted message (e.g. the recipient does not exist)."""

    type: Literal["message.rejected"] = "message.rejected"
    sender_id: UserId
    client_msg_id: ClientMsgId
    code: str
    reason: str


class PresenceChanged(Model):
    type: Literal["presence.changed"] = "presence.changed"
    gateway_id: str
    user: UserRef
    online: bool


class GatewayHeartbeat(Model):
    """Every gateway says who is connected to it, so the others can expire a dead one."""

    type: Literal["gateway.heartbeat"] = "gateway.heartbeat"
    gateway_id: str
    users: list[UserRef]
    sent_at: datetime
    #: After this many seconds without a heartbeat the gateway counts as gone.
    ttl_seconds: float


class SessionRevoked(Model):
    type: Literal["session.revoked"] = "session.revoked"
    user_id: UserId
    session_id: str


class StoreStatus(Model):
    """The persistence worker says whether submitted messages can be stored right now.

    Published on ``routing.STORE_STATUS`` (every gateway hears it): ``available=False`` when a
    batch fails because the database is unreachable, repeated every
    ``STORE_STATUS_INTERVAL_SECONDS`` while that lasts; ``available=True`` on the first batch
    committed after it, and once when a worker starts. ``reason`` is short and safe to log:
    never a URL, a host or a password.
    """

    type: Literal["store.status"] = "store.status"
    available: bool
    reason: str
    sent_at: datetime


#: How often a worker repeats ``StoreStatus(available=False)`` while the outage lasts (at most
#: one retry pause later). Gateways forget a "down" that is not repeated within 3x this, so a
#: worker that dies mid-outage cannot leave them refusing sends forever.
STORE_STATUS_INTERVAL_SECONDS = 5.0


class HistoryQuery(Model):
    """Request/reply: one page of one conversation as seen by ``viewer_id``."""

    type: Literal["history.query"] = "history.query"
    viewer_id: UserId
    with_user_id: UserId | None
    before_id: MessageId | None
    limit: PageSize
    room_id: RoomId | None = None


class SyncQuery(Model):
    type: Literal["sync.query"] = "sync.query"
    viewer_id: UserId
    after_id: Annotated[int, Field(ge=0, le=MAX_ID)]
    limit: PageSize


class MessagePage(Model):
    """Reply to a history or sync query."""

    type: Literal["message.page"] = "message.page"
    messages: list[ChatMessage]
    has_more: bool


class RoomsQuery(Model):
    """Request/reply: the rooms ``viewer_id`` is in or invited to."""

    type: Literal["rooms.query"] = "rooms.query"
    viewer_id: UserId


class RoomList(Model):
    """Reply to ``RoomsQuery``. ``as_of`` is the largest message id when it was read: a
    membership event with a larger id happened after it."""

    type: Literal["room.list"] = "room.list"
    rooms: list[RoomInfo]
    as_of: Annotated[int, Field(ge=0, le=MAX_ID)]


class RoomMembersQuery(Model):
    type: Literal["room_members.query"] = "room_members.query"
    viewer_id: UserId
    room_id: RoomId


class RoomMemberList(Model):
    type: Literal["room.members"] = "room.members"
    room_id: RoomId
    members: list[RoomMember]


class QueryFailed(Model):
    type: Literal["query.failed"] = "query.failed"
    code: str
    reason: str


Event = Annotated[
    MessageSubmitted
    | MessagesSubmitted
    | MessageStored
    | MessagesStored
    | MessageRejected
    | PresenceChanged
    | GatewayHeartbeat
    | SessionRevoked
    | StoreStatus
    | HistoryQuery
    | SyncQuery
    | MessagePage
    | QueryFailed
    | RoomCommand
    | RoomCommandResult
    | RoomsQuery
    | RoomList
    | RoomMembersQuery
    | RoomMemberList,
    Field(discriminator="type"),
]

_client_frames: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
_server_frames: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)
_events: TypeAdapter[Event] = TypeAdapter(Event)


def encode(model: Model) -> str:
    """Serialise a frame or an event to compact JSON text."""
    return model.model_dump_json()


def decode_client_frame(data: str | bytes) -> ClientFrame:
    """Parse a client frame; raises ``pydantic.ValidationError`` on anything malformed."""
    return _client_frames.validate_json(data)


def decode_server_frame(data: str | bytes) -> ServerFrame:
    return _server_frames.validate_json(data)


def decode_event(data: str | bytes) -> Event:
    return _events.validate_json(data)
