"""``chase cli sessions``: list your sessions, end one, or end them all.

    chase cli sessions --user alice                 # every live session, this one marked
    chase cli sessions --user alice --revoke ID     # end one (a lost phone)
    chase cli sessions --user alice --all           # log out everywhere

Logging in to run the command makes a session of its own; it is listed as ``(this one)`` and
ends when the command does.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from client.core.api import AuthApi, AuthSession
from client.terminal import visible

OK, REFUSED = 0, 6


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:  # noqa: ANN401 - argparse's private type
    sessions = commands.add_parser("sessions", parents=[common], help="list your sessions, end one or all")
    action = sessions.add_mutually_exclusive_group()
    action.add_argument("--revoke", metavar="ID", default=None, help="end the session with this id")
    action.add_argument("--all", action="store_true", help="end every session (log out everywhere)")


async def run(args: argparse.Namespace, api: AuthApi, session: AuthSession, out: TextIO) -> int:
    if args.revoke:
        if not await api.revoke_session(session, args.revoke):
            out.write(f"no live session {visible(args.revoke)} of yours\n")
            return REFUSED
        out.write(f"ended session {args.revoke}\n")
        return OK
    if args.all:
        await api.logout_everywhere(session)
        out.write("ended every session\n")
        return OK
    for item in await api.sessions(session):
        seen = item.last_seen_at.astimezone().strftime("%Y-%m-%d %H:%M") if item.last_seen_at else "-"
        created = item.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
        device = visible(item.device) if item.device else "(no device label)"
        mark = "  (this one)" if item.current else ""
        out.write(f"{item.session_id}  created {created}  last seen {seen}  {device}{mark}\n")
    return OK
