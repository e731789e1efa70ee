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

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

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


class Model(BaseModel):
    # strict: "5" is not an id and "true" is not a flag; JSON strings still parse as datetimes.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- shared value objects -------------------------------------------------------------------


class UserRef(Model):
    id: UserId
    username: str


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
    #: An end-to-end encrypted message (``body`` is then empty); None for a plain one.
    ciphertext: Encrypted | None = None


# --- client -> gateway frames ---------------------------------------------------------------


class SendFrame(Model):
    """Post ``body`` to the public room (``recipient_id`` null) or to one user."""

    type: Literal["send"] = "send"
    client_msg_id: ClientMsgId
    recipient_id: UserId | None = None
    body: str
    #: End-to-end encrypted content for a private message; ``body`` must then be ``""``.
    ciphertext: Encrypted | None = None


class HistoryFrame(Model):
    """One page of a conversation, newest first, strictly before ``before_id`` if given."""

    type: Literal["history"] = "history"
    request_id: RequestId | None = None
    #: ``None`` for the public room, else the other participant.
    with_user_id: UserId | None = None
    before_id: MessageId | None = None
    limit: PageSize = 50


class SyncFrame(Model):
    """Everything the user may see with an id greater than ``after_id``, oldest first."""

    type: Literal["sync"] = "sync"
    request_id: RequestId | None = None
    after_id: Annotated[int, Field(ge=0, le=MAX_ID)] = 0
    limit: PageSize = MAX_PAGE


class PingFrame(Model):
    type: Literal["ping"] = "ping"
    request_id: RequestId | None = None


ClientFrame = Annotated[
    SendFrame | HistoryFrame | SyncFrame | PingFrame, Field(discriminator="type")
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
    type: Literal["presence"] = "presence"
    user: UserRef
    online: bool


class HistoryPageFrame(Model):
    type: Literal["history_page"] = "history_page"
    request_id: RequestId | None = None
    with_user_id: UserId | None = None
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
    ciphertext: Encrypted | None = None


class MessageStored(Model):
    """Published by the persistence worker only after the COMMIT that stored ``message``."""

    type: Literal["message.stored"] = "message.stored"
    message: ChatMessage
    duplicate: bool = False
    #: True when the sender submitted an already stored message again (a resend): only the
    #: sender's pending send is acknowledged, nobody is shown the message again. Published on
    #: the sender's own key (``routing.message_resent``).
    resend: bool = False


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


class QueryFailed(Model):
    type: Literal["query.failed"] = "query.failed"
    code: str
    reason: str


Event = Annotated[
    MessageSubmitted
    | MessageStored
    | MessageRejected
    | PresenceChanged
    | GatewayHeartbeat
    | SessionRevoked
    | StoreStatus
    | HistoryQuery
    | SyncQuery
    | MessagePage
    | QueryFailed,
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
