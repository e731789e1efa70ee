"""One client connection's logic, sans-I/O: frames and events in, actions out.

:class:`ConnectionSession` knows who is connected (the authenticated user, never a field the
client fills in), the limits, the rate limit and which sends wait for their acknowledgement.
It imports no asyncio, websockets or broker code: the server feeds it what arrives and carries
out the actions it returns, in order:

- :class:`Send` a frame to this client (its outbox);
- :class:`Publish` an event on the bus, then call :meth:`ConnectionSession.publish_failed` if
  the broker did not confirm it;
- :class:`Query` the history service, then hand the reply to
  :meth:`ConnectionSession.query_replied` or the failure to :meth:`ConnectionSession.query_failed`;
- :class:`Close` the connection with a WebSocket close code.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from chase import routing
from chase.clock import Clock, SecureTokens, TokenSource
from chase.schemas import (
    AckFrame,
    ChatMessage,
    ClientMsgId,
    ErrorFrame,
    Event,
    HelloFrame,
    HistoryFrame,
    HistoryPageFrame,
    HistoryQuery,
    Limits,
    MessageFrame,
    MessagePage,
    MessageRejected,
    MessageStored,
    MessageSubmitted,
    PingFrame,
    PongFrame,
    QueryFailed,
    RequestId,
    RoomCommandResult,
    RoomFrame,
    RoomList,
    RoomListFrame,
    RoomMemberList,
    RoomMemberListFrame,
    RoomMembersFrame,
    RoomMembersQuery,
    RoomRequestFrame,
    RoomsFrame,
    RoomsQuery,
    RoomUpdateFrame,
    SendFrame,
    ServerFrame,
    SessionRevoked,
    SyncFrame,
    SyncPageFrame,
    SyncQuery,
    UserRef,
    decode_client_frame,
    encrypted_problem,
)
from chase.text import is_blank
from services.gateway.availability import StoreAvailability
from services.gateway.errors import (
    REASON_FLOODING,
    REASON_SESSION_REVOKED,
    RETRYABLE,
    CloseCode,
    ErrorCode,
    from_upstream,
)
from services.gateway.ratelimit import TokenBucket
from services.gateway.rooms import RoomDirectory, room_command

#: Sends waiting for their ack; past this the oldest is forgotten (the client resends it).
MAX_PENDING = 1000
_MAX_DETAIL = 200
#: What a send refused during a store outage is told (the worker's reason stays in the logs).
STORE_UNAVAILABLE_MESSAGE = "messages cannot be stored right now; try again shortly"
#: What a send is told while an earlier refused send of the connection was not sent again.
OUT_OF_ORDER_MESSAGE = "an earlier message was refused: send it again first, then this one"
#: One answer for "no such room" and "not a member": nobody learns which rooms exist.
ROOM_NOT_FOUND_MESSAGE = "no such room, or you are not a member of it"


@dataclass(frozen=True, slots=True)
class Send:
    frame: ServerFrame


@dataclass(frozen=True, slots=True)
class Publish:
    routing_key: str
    event: Event
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class Query:
    request: HistoryQuery | SyncQuery | RoomsQuery | RoomMembersQuery
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Action = Send | Publish | Query | Close


def may_see(user_id: int, message: ChatMessage, rooms: RoomDirectory | None = None) -> bool:
    """The one visibility rule: the public room is everyone's, a private message its two
    people's, a group room's message its members' (as this gateway knows them: ``rooms``)."""
    if message.room_id is not None:
        return rooms is not None and rooms.may_see(user_id, message)
    return message.recipient_id is None or user_id in (message.sender.id, message.recipient_id)


#: Membership commands are named by this unless a session is given its own token source.
_SECURE_TOKENS = SecureTokens()


class _NothingPending(OrderedDict):  # type: ignore[type-arg]
    """The table an idle session reads until it has something pending: always empty (a
    session writes only to a table of its own, made on first use)."""

    def __setitem__(self, key: object, value: object) -> None:
        raise TypeError("write to the session's own table (ConnectionSession._pending_for_write)")


_NOTHING_PENDING = _NothingPending()


class _SharedLimits:
    """Sessions with equal limits share one ``Limits`` (the server builds one per connection
    from its settings; an idle session would otherwise keep its own copy for hours)."""

    last: Limits | None = None

    @classmethod
    def of(cls, limits: Limits) -> Limits:
        if cls.last != limits:  # compared field by field
            cls.last = limits
        return cls.last


class ConnectionSession:
    """The state of one authenticated connection. Not thread-safe; one event loop feeds it.

    A gateway holds one per connection, most of them idle for hours: slots instead of an
    instance dict, and the tables of pending sends and commands made on first use (an idle
    session holds none), keep each one small (``docs/benchmarks.md``, idle connections)."""

    __slots__ = (
        "user", "session_id", "limits", "_clock", "_bucket", "_flood_strikes", "_strikes", "_pending_sends",
        "_max_pending", "_store", "_send_timeout", "_resend_first", "_rooms", "_tokens", "_room_commands",
    )

    def __init__(
        self,
        user: UserRef,
        session_id: str,
        limits: Limits,
        clock: Clock,
        *,
        flood_strikes: int | None = None,
        max_pending: int = MAX_PENDING,
        store: StoreAvailability | None = None,
        send_timeout: float | None = None,
        rooms: RoomDirectory | None = None,
        tokens: TokenSource | None = None,
    ) -> None:
        """``store`` is the gateway-wide view of the store's availability (None: always
        available); while it says unavailable, sends are refused with ``unavailable``.
        ``send_timeout``: a send neither acked nor refused that long after it was published is
        answered ``unavailable`` by :meth:`expire_pending` (None: never). ``rooms`` is the
        gateway-wide room membership table (None: no group rooms reach this connection);
        ``tokens`` names membership commands (default: random)."""
        self.user = user
        self.session_id = session_id
        self.limits = _SharedLimits.of(limits)
        self._clock = clock
        self._bucket = TokenBucket(limits.rate_per_second, limits.rate_burst, clock.monotonic())
        # Refused frames in a row before we stop answering and hang up: a client that ignores
        # rate_limited errors would otherwise have us write an error for every frame it sends.
        self._flood_strikes = flood_strikes if flood_strikes is not None else 2 * limits.rate_burst
        self._strikes = 0
        #: client_msg_id -> when it was published (monotonic), oldest first; made on first send.
        self._pending_sends: OrderedDict[str, float] | None = None
        self._max_pending = max_pending
        self._store = store
        self._send_timeout = send_timeout
        #: The first send refused with a retryable error and not sent again since: until it
        #: is, later sends are refused too, so none of them can be stored before it.
        self._resend_first: str | None = None
        self._rooms = rooms
        self._tokens = tokens or _SECURE_TOKENS
        #: Membership commands published and not answered yet: command_id -> (request_id, when);
        #: made on first command.
        self._room_commands: OrderedDict[str, tuple[str | None, float]] | None = None

    @property
    def _pending(self) -> OrderedDict[str, float]:
        """Sends waiting for their ack, to read and delete from (adding: ``_pending_for_write``)."""
        return self._pending_sends if self._pending_sends is not None else _NOTHING_PENDING

    def _pending_for_write(self) -> OrderedDict[str, float]:
        if self._pending_sends is None:
            self._pending_sends = OrderedDict()
        return self._pending_sends

    @property
    def _room_pending(self) -> OrderedDict[str, tuple[str | None, float]]:
        """Commands waiting for their result, to read and delete from (adding: ``_room_pending_for_write``)."""
        return self._room_commands if self._room_commands is not None else _NOTHING_PENDING

    def _room_pending_for_write(self) -> OrderedDict[str, tuple[str | None, float]]:
        if self._room_commands is None:
            self._room_commands = OrderedDict()
        return self._room_commands

    # --- connection life cycle ----------------------------------------------------------------

    def start(self, online_user_ids: Iterable[int]) -> list[Action]:
        """The hello frame; send it before anything else on the connection."""
        hello = HelloFrame(
            user=self.user,
            session_id=self.session_id,
            limits=self.limits,
            online_user_ids=sorted(set(online_user_ids)),
        )
        return [Send(hello)]

    @property
    def pending(self) -> frozenset[str]:
        """client_msg_ids published from this connection and not yet acknowledged or refused."""
        return frozenset(self._pending)

    # --- client frames ------------------------------------------------------------------------

    def receive_text(self, data: str | bytes) -> list[Action]:
        """Handle one WebSocket message from the client; carry out the actions in order."""
        if not self._bucket.take(self._clock.monotonic()):
            self._strikes += 1
            if self._strikes > self._flood_strikes:
                return [Close(CloseCode.POLICY_VIOLATION, REASON_FLOODING)]
            wait = self._bucket.retry_after(self._clock.monotonic())
            # Name the refused send or request, so the client knows what to send again.
            request_id, client_msg_id = (None, None) if self._oversize(data) else _correlation_ids(data)
            if client_msg_id is not None:
                self._refused(client_msg_id)
            return [
                self._error(
                    ErrorCode.RATE_LIMITED,
                    f"too many frames; retry in {wait:.2f}s",
                    request_id=request_id,
                    client_msg_id=client_msg_id,
                )
            ]
        self._strikes = 0
        if self._oversize(data):
            size = _size(data)
            return [
                self._error(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"frame is {size} bytes; the limit is {self.limits.max_frame_bytes}",
                )
            ]
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                return [self._error(ErrorCode.INVALID_FRAME, "frames must be UTF-8 JSON text")]
        try:
            frame = decode_client_frame(data)
        except ValidationError as exc:
            return [self._invalid(exc, data)]
        if isinstance(frame, SendFrame):
            return self._on_send(frame)
        if isinstance(frame, HistoryFrame):
            query = HistoryQuery(
                viewer_id=self.user.id,
                with_user_id=frame.with_user_id,
                before_id=frame.before_id,
                limit=frame.limit,
                room_id=frame.room_id,
            )
            return [Query(query, frame.request_id)]
        if isinstance(frame, SyncFrame):
            query = SyncQuery(viewer_id=self.user.id, after_id=frame.after_id, limit=frame.limit)
            return [Query(query, frame.request_id)]
        if isinstance(frame, PingFrame):
            return [Send(PongFrame(request_id=frame.request_id))]
        if isinstance(frame, RoomsFrame):
            return [Query(RoomsQuery(viewer_id=self.user.id), frame.request_id)]
        if isinstance(frame, RoomMembersFrame):
            return [Query(RoomMembersQuery(viewer_id=self.user.id, room_id=frame.room_id), frame.request_id)]
        if isinstance(frame, RoomRequestFrame):
            return self._on_room_request(frame)
        return [self._error(ErrorCode.UNKNOWN_TYPE, "unknown frame type")]  # pragma: no cover

    def _oversize(self, data: str | bytes) -> bool:
        return _size(data) > self.limits.max_frame_bytes

    def _refused(self, client_msg_id: str) -> None:
        if self._resend_first is None:
            self._resend_first = client_msg_id

    def _shown_stored(self, messages: Iterable[ChatMessage]) -> None:
        """The client is shown these stored messages (live or in a page). A refused send whose
        earlier copy was stored after all (its publish failed only as the broker link dropped,
        or it timed out and was stored late) is one the client settles from this copy and never
        sends again: it must not hold up the client's later sends any longer."""
        if self._resend_first is None:
            return
        for message in messages:
            if message.sender.id == self.user.id and message.client_msg_id == self._resend_first:
                self._resend_first = None
                return

    def _on_send(self, frame: SendFrame) -> list[Action]:
        cid = frame.client_msg_id
        if self._resend_first is not None and self._resend_first != cid and cid not in self._pending:
            # Per-connection order: an earlier send was refused and not sent again yet. Were
            # this one published now, it would be stored before that one.
            return [self._error(ErrorCode.UNAVAILABLE, OUT_OF_ORDER_MESSAGE, client_msg_id=cid)]
        if self._resend_first == cid:
            self._resend_first = None
        if frame.ciphertext is not None:
            problem = encrypted_problem(frame.body, frame.ciphertext, frame.recipient_id)
            if problem is not None:
                return [self._error(ErrorCode.ENCRYPTED_INVALID, problem, client_msg_id=cid)]
        elif is_blank(frame.body):
            return [
                self._error(ErrorCode.BODY_EMPTY, "message body is empty or has no visible character", client_msg_id=cid)
            ]
        elif len(frame.body) > self.limits.max_body_chars:
            return [
                self._error(
                    ErrorCode.BODY_TOO_LONG,
                    f"message body is {len(frame.body)} characters; the limit is "
                    f"{self.limits.max_body_chars}",
                    client_msg_id=cid,
                )
            ]
        if self._store is not None and not self._store.available:
            # Published now, it would wait unanswered for the database. A send already pending
            # stays pending: its first copy is on the bus and will be acked once stored.
            if cid not in self._pending:
                self._refused(cid)
            return [self._error(ErrorCode.UNAVAILABLE, STORE_UNAVAILABLE_MESSAGE, client_msg_id=cid)]
        if frame.room_id is not None and (self._rooms is None or not self._rooms.is_member(self.user.id, frame.room_id)):
            # Refused here at once when this gateway knows the sender is not in the room; the
            # worker checks again when it stores the message (this view may be a moment old).
            return [self._error(ErrorCode.ROOM_NOT_FOUND, ROOM_NOT_FOUND_MESSAGE, client_msg_id=cid)]
        event = MessageSubmitted(
            # The sender is who logged in, whatever the frame says (and it cannot say: extra
            # fields are refused by the schema).
            sender=self.user,
            room_id=frame.room_id,
            recipient_id=frame.recipient_id,
            body=frame.body,
            client_msg_id=cid,
            submitted_at=self._clock.now(),
            ciphertext=frame.ciphertext,
        )
        pending = self._pending_for_write()
        pending[cid] = self._clock.monotonic()
        pending.move_to_end(cid)
        while len(pending) > self._max_pending:
            pending.popitem(last=False)
        return [Publish(routing.MESSAGE_SUBMITTED, event, cid)]

    def _on_room_request(self, frame: RoomRequestFrame) -> list[Action]:
        """A membership change: published to the persistence worker, which stores it in order
        with messages and answers on this user's key (:meth:`on_event`)."""
        if isinstance(frame, RoomUpdateFrame) and frame.name is None and frame.topic is None:
            return [self._error(ErrorCode.INVALID_FRAME, "room_update needs a name or a topic",
                                request_id=frame.request_id)]
        if self._store is not None and not self._store.available:
            return [self._error(ErrorCode.UNAVAILABLE, STORE_UNAVAILABLE_MESSAGE, request_id=frame.request_id)]
        command_id = f"room.{self._tokens.token(12)}"
        command = room_command(frame, self.user, command_id, self._clock.now())
        commands = self._room_pending_for_write()
        commands[command_id] = (frame.request_id, self._clock.monotonic())
        while len(commands) > self._max_pending:
            commands.popitem(last=False)
        return [Publish(routing.ROOM_COMMAND, command, command_id)]

    def _on_room_result(self, result: RoomCommandResult) -> list[Action]:
        if result.actor_id != self.user.id or result.command_id not in self._room_pending:
            return []
        request_id, _ = self._room_pending.pop(result.command_id)
        if result.room is None or result.message_id is None:
            return [self._error(from_upstream(result.code or ""), result.reason or "refused", request_id=request_id)]
        return [Send(RoomFrame(request_id=request_id, room=result.room, message_id=result.message_id))]

    # --- outcomes of the actions --------------------------------------------------------------

    def publish_failed(self, client_msg_id: str) -> list[Action]:
        """The broker did not take the submitted message: tell the client, never ack it."""
        if client_msg_id in self._room_pending:
            request_id, _ = self._room_pending.pop(client_msg_id)
            return [self._error(ErrorCode.UNAVAILABLE, "messaging is unavailable; nothing was changed, try again",
                                request_id=request_id)]
        self._pending.pop(client_msg_id, None)
        self._refused(client_msg_id)
        return [
            self._error(
                ErrorCode.UNAVAILABLE,
                "messaging is unavailable; the message was not sent, try again",
                client_msg_id=client_msg_id,
            )
        ]

    def expire_pending(self) -> list[Action]:
        """Answer ``unavailable`` (retryable) to every send published more than
        ``send_timeout`` ago and still unanswered, and forget it: whatever hangs behind the
        gateway, a send gets an answer within that bound. Call it about every second.

        A late ack for such a send is not passed on (its message frame is); the client's
        resend of the same frame is then acked as a duplicate.
        """
        if self._send_timeout is None or not (self._pending or self._room_pending):
            return []
        cutoff = self._clock.monotonic() - self._send_timeout
        expired = [cid for cid, published in self._pending.items() if published <= cutoff]
        actions: list[Action] = []
        for command_id in [c for c, (_, when) in self._room_pending.items() if when <= cutoff]:
            # It may still be applied later: the client asks for its rooms to find out.
            request_id, _ = self._room_pending.pop(command_id)
            actions.append(self._error(ErrorCode.UNAVAILABLE, "no answer from the store in time; check, then "
                                       "try again", request_id=request_id))
        for cid in expired:
            del self._pending[cid]
            actions.append(
                self._error(ErrorCode.UNAVAILABLE, "no answer from the store in time; send it again",
                            client_msg_id=cid)
            )
        return actions

    def query_replied(self, query: Query, reply: Event) -> list[Action]:
        """Turn the history service's reply into the page (or error) frame for the client."""
        if isinstance(reply, QueryFailed):
            code = from_upstream(reply.code)
            return [self._error(code, reply.reason, request_id=query.request_id)]
        if isinstance(query.request, RoomsQuery) and isinstance(reply, RoomList):
            return [Send(RoomListFrame(request_id=query.request_id, rooms=reply.rooms))]
        if isinstance(query.request, RoomMembersQuery) and isinstance(reply, RoomMemberList):
            return [Send(RoomMemberListFrame(request_id=query.request_id, room_id=reply.room_id,
                                             members=reply.members))]
        if not isinstance(reply, MessagePage):
            return self.query_failed(query, ErrorCode.INTERNAL, "unexpected reply from the history service")
        # The history service already filters by viewer; checking again costs nothing and means
        # a bug there can never show someone a conversation that is not theirs.
        # Room messages in a page were read within the viewer's membership window by the
        # history service (a former member's included); a history page holds only its room's.
        request = query.request
        messages = [
            m for m in reply.messages
            if (m.room_id is not None and (not isinstance(request, HistoryQuery) or m.room_id == request.room_id))
            or (m.room_id is None and may_see(self.user.id, m)
                and not (isinstance(request, HistoryQuery) and request.room_id is not None))
        ]
        self._shown_stored(messages)
        if isinstance(query.request, HistoryQuery):
            page: ServerFrame = HistoryPageFrame(
                request_id=query.request_id,
                with_user_id=query.request.with_user_id,
                room_id=query.request.room_id,
                messages=messages,
                has_more=reply.has_more,
            )
        else:
            page = SyncPageFrame(request_id=query.request_id, messages=messages, has_more=reply.has_more)
        return [Send(page)]

    def query_failed(self, query: Query, code: ErrorCode, message: str) -> list[Action]:
        """The query got no answer (timeout, broker down) or a bad one."""
        return [self._error(code, message, request_id=query.request_id)]

    # --- bus events ---------------------------------------------------------------------------

    def on_event(self, event: Event, message_frame: MessageFrame | None = None) -> list[Action]:
        """An event the fan-out routed to this connection; only Send and Close come back.

        ``message_frame``: for a MessageStored, the ``message`` frame the fan-out built once
        for every recipient; the Send for it carries that very object, so the caller can write
        bytes it serialised once."""
        if isinstance(event, MessageStored):
            return self._on_stored(event, message_frame)
        if isinstance(event, MessageRejected):
            if event.sender_id != self.user.id or event.client_msg_id not in self._pending:
                return []
            del self._pending[event.client_msg_id]
            code = from_upstream(event.code)
            return [self._error(code, event.reason, client_msg_id=event.client_msg_id)]
        if isinstance(event, SessionRevoked):
            if event.session_id == self.session_id and event.user_id == self.user.id:
                return [Close(CloseCode.UNAUTHORIZED, REASON_SESSION_REVOKED)]
        if isinstance(event, RoomCommandResult):
            return self._on_room_result(event)
        return []

    def _on_stored(self, event: MessageStored, message_frame: MessageFrame | None) -> list[Action]:
        message = event.message
        # One's own pending message is acknowledged even when one may no longer see where it
        # went (removed from the room after sending it): it is stored, and must not be resent.
        own = message.sender.id == self.user.id and message.client_msg_id in self._pending
        visible = may_see(self.user.id, message, self._rooms)
        if not visible and not own:
            return []
        if event.resend:
            # The answer to a resend: the sending connection's ack, and nothing for anyone
            # else (the message itself went out when it was first stored).
            if not own:
                return []
            del self._pending[message.client_msg_id]
            self._shown_stored((message,))
            return [Send(AckFrame(client_msg_id=message.client_msg_id, message_id=message.id,
                                  created_at=message.created_at, duplicate=True))]
        actions: list[Action] = []
        if own:
            del self._pending[message.client_msg_id]
            ack = AckFrame(
                client_msg_id=message.client_msg_id,
                message_id=message.id,
                created_at=message.created_at,
                duplicate=event.duplicate,
            )
            actions.append(Send(ack))
        # Redelivered duplicates are fanned out too: a worker that died between its COMMIT and
        # its publish leaves the redelivered copy as the only one anyone will get live. Clients
        # dedupe by id.
        if visible:
            if message_frame is None or message_frame.message is not message:
                message_frame = MessageFrame(message=message)
            actions.append(Send(message_frame))
        self._shown_stored((message,))
        return actions

    # --- errors -------------------------------------------------------------------------------

    def _error(
        self,
        code: ErrorCode,
        message: str,
        *,
        request_id: str | None = None,
        client_msg_id: str | None = None,
    ) -> Send:
        return Send(
            ErrorFrame(
                code=code,
                message=message[:_MAX_DETAIL],
                request_id=request_id,
                client_msg_id=client_msg_id,
                retryable=code in RETRYABLE,
            )
        )

    def _invalid(self, exc: ValidationError, data: str) -> Send:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0] if errors else {"type": "", "loc": (), "msg": "invalid frame"}
        request_id, client_msg_id = _correlation_ids(data)
        if first["type"] == "json_invalid":
            # The parser's reason says where: nesting deeper than 200 levels, a lone surrogate
            # escape, a stray character. It quotes no input.
            reason = first.get("ctx", {}).get("error")
            code, text = ErrorCode.INVALID_FRAME, f"malformed JSON: {reason}" if reason else "malformed JSON"
        elif first["type"] == "union_tag_invalid":
            code, text = ErrorCode.UNKNOWN_TYPE, (
                "unknown frame type; expected send, history, sync, ping, rooms, room_members or a room_* request"
            )
        elif first["type"] == "union_tag_not_found":
            code, text = ErrorCode.INVALID_FRAME, "frame has no type field"
        elif first["type"] == "dict_type":
            code, text = ErrorCode.INVALID_FRAME, "a frame must be a JSON object"
        else:
            code = ErrorCode.INVALID_FRAME
            text = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in errors)
        return self._error(code, text, request_id=request_id, client_msg_id=client_msg_id)


_request_ids: TypeAdapter[RequestId] = TypeAdapter(RequestId)
_client_msg_ids: TypeAdapter[ClientMsgId] = TypeAdapter(ClientMsgId)


def _size(data: str | bytes) -> int:
    return len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))


def _correlation_ids(data: str | bytes) -> tuple[str | None, str | None]:
    """The request_id / client_msg_id of a frame we refused, when they are usable, so the
    client can tell which of its requests failed."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than Python's own parser goes (the schema parser
        # already refused the frame as malformed).
        return None, None
    if not isinstance(raw, dict):
        return None, None
    return _valid(_request_ids, raw.get("request_id")), _valid(_client_msg_ids, raw.get("client_msg_id"))


def _valid(adapter: TypeAdapter[str], value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None


def _field(loc: tuple[int | str, ...]) -> str:
    # The first element is the frame type pydantic tried ('send'); the field follows it.
    parts = [str(p) for p in loc[1:]] or [str(p) for p in loc]
    return ".".join(parts) or "frame"
