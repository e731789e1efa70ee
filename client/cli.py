"""``chase cli``: register, send one message, follow the room, or chat from a terminal.

    chase cli register --user alice
    chase cli say --user alice "hello everyone"        # to the public room, exits after the ack
    chase cli say --user alice --to bob "psst"         # a private message
    chase cli tail --user bob                          # print messages as they arrive
    chase cli chat --user bob                          # lines typed are sent; /to NAME switches
    chase cli room create --user alice "Project X"     # a group room (see `chase cli room -h`)
    chase cli room invite --user alice "Project X" bob
    chase cli room join --user bob "Project X"         # by name (of a room one is invited to) or id
    chase cli say --user bob --room "Project X" "hi"   # to a group room
    chase cli tail --user bob --room "Project X"       # follow one room
    chase cli verify --user alice bob                  # safety number and device keys (docs/e2ee.md)
    chase cli backup --user alice                      # make a recovery key, shown once

Private messages are end-to-end encrypted (``--no-e2ee`` to send them server-readable); see
:mod:`client.cli_e2ee`.

The password comes from ``CHASE_PASSWORD`` or is asked for without echo; it is never an
argument (it would land in the shell history). Exit codes are :class:`Exit`.

``chat`` reads lines from a terminal, a pipe or a file (``chase cli chat < notes.txt``) and sends
them in order. At the end of input it waits for them to be stored (as long as acks keep coming,
at most ``ACK_TIMEOUT`` seconds without one), then exits. Messages still unsent at exit are
kept on this computer and sent at the next ``chase cli`` or desktop login of the same account;
a line on stderr says how many.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import stat
import sys
from collections.abc import AsyncIterator, Callable
from enum import IntEnum
from pathlib import Path
from typing import TextIO

from chase.logging import configure
from chase.schemas import ChatMessage
from client import cli_e2ee, cli_sessions
from client.core.api import AuthApi, AuthSession
from client.core.backoff import BackoffPolicy
from client.core.chat import ChatClient
from client.core.endpoints import DEFAULT_SERVER, Endpoints
from client.core.errors import (
    CertificateNotTrusted,
    ClientError,
    InvalidCredentials,
    InvalidInput,
    MessageRejected,
    ServerUnreachable,
    SessionExpired,
    TooManyAttempts,
    UsernameTaken,
)
from client.core.events import ClientEvent, ClientState, MessagesAdded, SendFailed, SessionEnded, Source, StateChanged
from client.core.local import DATA_DIR_ENV
from client.core.rooms import Room, RoomRefused, Rooms
from client.core.session import Directory, chat_client, local_state, open_api, with_told_gateway
from client.terminal import visible

#: How long ``say`` (and ``chat`` at end of input) waits for an acknowledgement, reconnects included.
ACK_TIMEOUT = 60.0


class Exit(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    UNREACHABLE = 3
    CERTIFICATE = 4
    AUTH = 5
    REFUSED = 6
    INTERRUPTED = 130


_EXIT_FOR: list[tuple[type[ClientError], Exit]] = [
    (ServerUnreachable, Exit.UNREACHABLE), (CertificateNotTrusted, Exit.CERTIFICATE),
    (InvalidCredentials, Exit.AUTH), (SessionExpired, Exit.AUTH), (TooManyAttempts, Exit.AUTH),
    (UsernameTaken, Exit.REFUSED), (InvalidInput, Exit.REFUSED), (MessageRejected, Exit.REFUSED),
    (RoomRefused, Exit.REFUSED),
]


#: The environment variables the command-line client reads (listed in docs/configuration.md).
ENV_USER = "CHASE_USER"
ENV_PASSWORD = "CHASE_PASSWORD"
VARIABLES = (
    (ENV_USER, "Username when --user is not given (else it is asked for)"),
    (ENV_PASSWORD, "Password (else it is asked for, without echo)"),
    (cli_e2ee.ENV_RECOVERY_KEY, "Recovery key that unlocks the key backup, so this command reads encrypted "
                                "messages sent before it logged in (chase cli backup makes one)"),
    (DATA_DIR_ENV, "Where the clients (this one and the desktop) keep unsent messages and sync cursors "
                   "(default: the platform's data folder, e.g. ~/.local/share/chase)"),
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", default=DEFAULT_SERVER, help="auth API address (default %(default)s)")
    common.add_argument("--gateway", default=None, help="gateway address (default wss://<server host>:8765)")
    common.add_argument("--ca", type=Path, default=None,
                        help="CA file to trust (default certs/ca.pem for a local server)")
    common.add_argument("--user", default=os.environ.get(ENV_USER), help=f"username (or {ENV_USER})")
    parser = argparse.ArgumentParser(prog="chase cli", description="ChaSe from the terminal.",
                                     epilog=f"The password is read from {ENV_PASSWORD} or asked for.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("register", parents=[common], help="create an account")
    say = commands.add_parser("say", parents=[common], help="send one message and exit after its ack")
    say.add_argument("--to", default=None, help="send privately to this user instead of the room")
    say.add_argument("--room", default=None, help="send to this group room (its name or id)")
    say.add_argument("--wait", type=float, default=ACK_TIMEOUT,
                     help="seconds to wait for the server to store it (default %(default)s)")
    say.add_argument("text", nargs="+", help="the message")
    tail = commands.add_parser("tail", parents=[common], help="print messages as they arrive")
    tail.add_argument("--history", type=int, default=10, help="room messages to print first (default 10)")
    tail.add_argument("--room", default=None, help="follow only this group room (its name or id)")
    chat = commands.add_parser("chat", parents=[common], help="lines typed (or piped in) are sent, in order")
    chat.add_argument("--wait", type=float, default=ACK_TIMEOUT,
                      help="at the end of input, seconds to wait without any message being stored "
                           "before exiting (default %(default)s)")
    cli_sessions.add_parser(commands, common)
    room = commands.add_parser("room", parents=[common], help="group rooms: create, invite, join, leave, list...")
    room.add_argument("action", choices=ROOM_ACTIONS, help="; ".join(f"{k} {v}" for k, v in ROOM_ACTIONS.items()))
    room.add_argument("args", nargs="*", help="what the action takes (see above)")
    room.add_argument("--topic", default=None, help="create: the room's topic")
    room.add_argument("--open", action="store_true", help="create: anyone may join without an invitation")
    room.add_argument("--whole-history", action="store_true",
                      help="create: new members read the whole history (default: from their joining)")
    cli_e2ee.add_parsers(commands, common)
    for command in (say, chat, tail):
        command.add_argument("--no-e2ee", action="store_true",
                             help="send private messages readable by the server (not end-to-end encrypted)")
    return parser


#: ``chase cli room ACTION ARGS``: what each takes.
ROOM_ACTIONS = {
    "create": "NAME", "list": "", "members": "ROOM", "invite": "ROOM USER...", "join": "ROOM",
    "leave": "ROOM", "remove": "ROOM USER", "role": "ROOM USER owner|admin|member", "rename": "ROOM NAME",
    "topic": "ROOM TEXT",
}


def main(argv: list[str]) -> int:
    """Run one CLI command; returns the process exit code (see :class:`Exit`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure("warning")
    try:
        endpoints = Endpoints.resolve(args.server, args.gateway, args.ca)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        username = args.user or input("username: ")
        password = os.environ.get(ENV_PASSWORD) or getpass.getpass(f"password for {username}: ")
        return asyncio.run(_run(args, endpoints, username, password))
    except (KeyboardInterrupt, EOFError):
        return Exit.INTERRUPTED
    except ClientError as exc:
        print(f"chase: {exc.message}", file=sys.stderr)
        return next((code for kind, code in _EXIT_FOR if isinstance(exc, kind)), Exit.ERROR)


async def _run(args: argparse.Namespace, endpoints: Endpoints, username: str, password: str) -> int:
    api = open_api(endpoints)
    try:
        if args.command == "register":
            user = await api.register(username, password)
            print(f"registered {user.username} (id {user.id})")
            return Exit.OK
        session = await api.login(username, password)
        try:
            if args.command == "sessions":
                return await cli_sessions.run(args, api, session, sys.stdout)
            if args.gateway is None:
                endpoints = await with_told_gateway(api, endpoints)
            return await _logged_in(args, endpoints, api, session)
        finally:
            await api.logout(session)
    finally:
        await api.aclose()


async def _logged_in(args: argparse.Namespace, endpoints: Endpoints, api: AuthApi, session: AuthSession) -> int:
    directory = Directory(await api.all_users(session))
    # Private messages are end-to-end encrypted unless --no-e2ee (docs/e2ee.md).
    e2ee = None if getattr(args, "no_e2ee", False) else await cli_e2ee.open_device(api, session)
    if e2ee is not None:
        e2ee.name_of = directory.name
        e2ee.on_notice = lambda text: print(f"-- {visible(text)}", file=sys.stderr)
    if args.command in ("verify", "backup"):
        assert e2ee is not None
        return await cli_e2ee.run(args, e2ee, directory, sys.stdout)
    # tail sends nothing: it leaves the account's kept outbox to a client that sends.
    local = local_state(endpoints, session) if args.command != "tail" else None
    client = chat_client(endpoints, session, policy=BackoffPolicy(max_attempts=8), local=local, e2ee=e2ee)
    rooms = Rooms(client)
    try:
        await client.start()
        if client.unsent:
            print(f"-- sending {client.unsent} message(s) kept from an earlier session", file=sys.stderr)
        await rooms.refresh()
        if args.command == "room":
            return await room_command(rooms, directory, args)
        if args.command == "say":
            to = Room(find_room(rooms, args.room)) if args.room else _recipient(directory, args.to)
            return await _say(client, to, " ".join(args.text), args.wait)
        printer = Printer(session.user.id, directory, sys.stdout, rooms)
        printer.note(f"connected as {session.user.username}; " + (
            "type to talk to the room, /to NAME for a private chat, /to all back, /quit or Ctrl-D to stop"
            if args.command == "chat" else "Ctrl-C to stop"))
        if args.command == "tail":
            shown: Room | None = None
            if args.room:
                shown = Room(find_room(rooms, args.room))
                printer.only = shown
                await client.load_history(shown)
            for message in client.store.messages(shown)[-args.history:] if args.history > 0 else []:
                printer.message(message)
            return await _follow(client, printer, None)
        return await _follow(client, printer, _Chat(client, api, session, directory, printer, args.wait))
    finally:
        unsent, kept = client.unsent, client.keeps_unsent
        await client.close()
        if unsent and kept:
            print(f"chase: {unsent} message(s) not sent yet; they are kept and will be sent the next time "
                  f"{session.user.username} logs in", file=sys.stderr)
        elif unsent:
            print(f"chase: {unsent} message(s) not sent and lost: another chase client of "
                  f"{session.user.username} on this computer keeps the unsent messages", file=sys.stderr)


async def _say(client: ChatClient, to: int | Room | None, text: str, wait: float) -> int:
    outgoing = await client.send(text, to)
    try:
        ack = await asyncio.wait_for(asyncio.shield(outgoing.acked), wait)
    except TimeoutError:
        print("chase: the server did not acknowledge the message in time", file=sys.stderr)
        return Exit.UNREACHABLE
    print(f"sent (message {ack.message_id})")
    return Exit.OK


def _recipient(directory: Directory, name: str | None) -> int | None:
    if name is None or name.lower() in ("all", "room"):
        return None
    user = directory.by_name(name)
    if user is None:
        raise InvalidInput(f"there is no user called {name!r}")
    return user.id


def find_room(rooms: Rooms, name_or_id: str) -> int:
    """The id of one of the user's rooms (or invitations), by id or by name (any letter case)."""
    if name_or_id.isdigit():
        return int(name_or_id)
    found = [r.id for r in rooms.rooms.values() if r.name.lower() == name_or_id.lower()]
    if len(found) != 1:
        raise InvalidInput(f"you have no room called {name_or_id!r}" if not found else
                           f"you have several rooms called {name_or_id!r}: give its id ({', '.join(map(str, found))})")
    return found[0]


async def room_command(rooms: Rooms, directory: Directory, args: argparse.Namespace) -> int:
    """``chase cli room ACTION ARGS``; prints what happened, one line each."""
    action, given = args.action, args.args
    wanted = len(ROOM_ACTIONS[action].split())
    if len(given) < wanted or (len(given) > wanted and not ROOM_ACTIONS[action].endswith("...")):
        raise InvalidInput(f"usage: chase cli room {action} {ROOM_ACTIONS[action]}".rstrip())
    if action == "create":
        room = await rooms.create(given[0], args.topic, open=args.open,
                                  history="all" if args.whole_history else "joined")
        print(f"created room {room.id}: {room.name}")
        return Exit.OK
    if action == "list":
        for room in rooms.rooms.values():
            topic = f" — {room.topic}" if room.topic else ""
            print(f"{room.id}\t{room.name}\t{room.role}\t{room.member_count} members{topic}")
        return Exit.OK
    room_id = find_room(rooms, given[0])
    if action == "members":
        for member in await rooms.members(room_id):
            print(f"{member.user.username}\t{member.role}")
    elif action == "invite":
        for name in given[1:]:
            await rooms.invite(room_id, _user(directory, name))
            print(f"invited {name}")
    elif action == "join":
        print(f"joined {(await rooms.join(room_id)).name}")
    elif action == "leave":
        print(f"left {(await rooms.leave(room_id)).name}")
    elif action == "remove":
        await rooms.remove(room_id, _user(directory, given[1]))
        print(f"removed {given[1]}")
    elif action == "role":
        await rooms.set_role(room_id, _user(directory, given[1]), given[2])
        print(f"{given[1]} is now {given[2]}")
    elif action == "rename":
        print(f"renamed to {(await rooms.update(room_id, name=given[1])).name}")
    elif action == "topic":
        await rooms.update(room_id, topic=given[1])
        print("topic set")
    return Exit.OK


def _user(directory: Directory, name: str) -> int:
    user = directory.by_name(name)
    if user is None:
        raise InvalidInput(f"there is no user called {name!r}")
    return user.id


class Printer:
    """Prints messages as ``time  sender -> room|#name|you|name: text``, each exactly once."""

    def __init__(self, me_id: int, directory: Directory, out: TextIO, rooms: Rooms | None = None) -> None:
        self.me_id, self.directory, self.out, self.rooms = me_id, directory, out, rooms
        #: Only this group room's messages are printed (tail --room); None: everything.
        self.only: Room | None = None

    def room_name(self, room_id: int) -> str:
        room = self.rooms.rooms.get(room_id) if self.rooms is not None else None
        return room.name if room is not None else f"room {room_id}"

    def message(self, message: ChatMessage) -> None:
        if self.only is not None and message.room_id != self.only.id:
            return
        self.out.write(format_message(message, self.me_id, self.directory.name, self.room_name) + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        # Notices quote server text and user names: as untrusted as message bodies.
        print(f"-- {visible(text)}", file=sys.stderr, flush=True)


def format_message(message: ChatMessage, me_id: int, name_of: Callable[[int], str],
                   room_name: Callable[[int], str] | None = None) -> str:
    """One message as a terminal line; continuation lines of a long body are indented."""
    when = message.created_at.astimezone().strftime("%H:%M:%S")
    if message.room_id is not None:
        target = "#" + (room_name(message.room_id) if room_name else str(message.room_id))
        if message.event is not None:
            return f"{when}  -- #{target[1:]}: {message.body}"
    elif message.recipient_id is None:
        target = "room"
    elif message.recipient_id == me_id:
        target = "you"
    else:
        target = name_of(message.recipient_id)
    # Other people's text: control characters are shown, never obeyed (client/terminal.py).
    body = visible(message.body, keep_newlines=True).replace("\n", "\n" + " " * 10)
    return f"{when}  {visible(message.sender.username)} -> {visible(target)}: {body}"


async def _follow(client: ChatClient, printer: Printer, chat: _Chat | None) -> int:
    events: asyncio.Queue[ClientEvent] = asyncio.Queue()
    unsubscribe = client.subscribe(events.put_nowait)
    reader = asyncio.create_task(chat.run()) if chat else None
    next_event: asyncio.Task[ClientEvent] | None = None
    try:
        while True:
            next_event = asyncio.create_task(events.get())
            waiting = {next_event} | ({reader} if reader else set())
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if next_event in done:
                code = _on_event(next_event.result(), printer)
                if code is not None:
                    return code
            if reader in done:
                # Input is over: print what came meanwhile (the last messages' own echo) first.
                while not events.empty():
                    _on_event(events.get_nowait(), printer)
                return reader.result()
    finally:
        unsubscribe()
        unfinished = [t for t in (reader, next_event) if t is not None and not t.done()]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)


def _on_event(event: ClientEvent, printer: Printer) -> int | None:
    match event:
        case MessagesAdded(messages=messages, source=source) if source is not Source.HISTORY:
            for message in messages:
                printer.message(message)
        case StateChanged(state=ClientState.OFFLINE, next_attempt_at=when, reason=reason) if when is not None:
            printer.note(f"offline{': ' + reason if reason else ''}; next attempt at {when.strftime('%H:%M:%S')} "
                         "(sending a line tries at once)")
        case StateChanged(state=state, attempt=attempt, max_attempts=most, reason=reason):
            detail = f" (attempt {attempt} of {most})" if attempt else ""
            printer.note(f"{state.value}{detail}{': ' + reason if reason and attempt else ''}")
        case SendFailed(retryable=False, code=code, message=message):
            printer.note(f"not sent ({code}): {message}")
        case SessionEnded(reason=reason):
            printer.note(reason)
            return Exit.AUTH
    return None


class _Chat:
    """Sends the lines read from stdin; ``/to NAME`` switches, ``/to all`` back to the room."""

    def __init__(self, client: ChatClient, api: AuthApi, session: AuthSession, directory: Directory,
                 printer: Printer, wait: float) -> None:
        self.client, self.api, self.session, self.wait = client, api, session, wait
        self.directory, self.printer = directory, printer
        self.recipient: int | None = None

    async def run(self) -> int:
        async for line in _stdin_lines():
            line = line.rstrip("\r\n")
            if line.startswith("/"):
                if await self._command(line):
                    break
                continue
            if line.strip():
                try:
                    await self.client.send(line, self.recipient)
                except MessageRejected as exc:
                    self.printer.note(f"not sent: {exc.message}")
        # Input ended (or /quit): leave once everything is stored, or acks stopped coming.
        return Exit.OK if await drain(self.client, self.wait) else Exit.UNREACHABLE

    async def _command(self, line: str) -> bool:
        """Handle a slash command; True means quit."""
        name, _, argument = line[1:].partition(" ")
        if name in ("quit", "exit", "q"):
            return True
        if name == "to" and argument.strip():
            if self.directory.by_name(argument.strip()) is None:
                # Someone may have registered since we started: look again.
                self.directory = Directory(await self.api.all_users(self.session))
                self.printer.directory = self.directory
            try:
                self.recipient = _recipient(self.directory, argument.strip())
            except InvalidInput as exc:
                self.printer.note(exc.message)
                return False
            target = "the room" if self.recipient is None else self.directory.name(self.recipient)
            self.printer.note(f"now talking to {target}")
            return False
        self.printer.note("commands: /to NAME, /to all, /quit")
        return False


async def drain(client: ChatClient, idle_timeout: float) -> bool:
    """Wait until every queued message is stored or refused; False when no ack came for
    ``idle_timeout`` seconds (a long queue may take longer in all, as long as it moves)."""
    while True:
        waiting = [f for e in client.outbox.unacked() if (f := client.acked(e.client_msg_id)) is not None]
        if not waiting:
            return client.unsent == 0
        done, _ = await asyncio.wait(waiting, timeout=idle_timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return False


async def _stdin_lines() -> AsyncIterator[str]:
    """Lines of stdin, whatever it is: a terminal, a pipe, or a regular file (``< file``)."""
    if stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode):
        # The event loop cannot watch a regular file (it is always readable); read it directly,
        # a line at a time, letting the client run in between.
        for raw in sys.stdin.buffer:
            yield raw.decode("utf-8", errors="replace")
            await asyncio.sleep(0)
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)  # a long pasted line is refused by length, not here
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            yield line.decode("utf-8", errors="replace")
    finally:
        transport.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
