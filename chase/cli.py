"""The ``chase`` command: run services, migrate, make certificates, and the clients.

Each subcommand is a few lines that hand over to a composition root. Start-up problems (a bad
URL, a database or broker that does not answer, missing certificates) end in one clear line on
stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from chase.config import CommonSettings, ConfigError, load
from chase.logging import configure, get_logger

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The clients parse their own options.
    if argv and argv[0] == "cli":
        from client.cli import main as cli_main

        return cli_main(argv[1:])
    if argv and argv[0] == "client":
        from client.qt.app import main as client_main

        return client_main(argv[1:])

    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return EXIT_CONFIG
    try:
        common = load(CommonSettings)
        configure(common.log_level, json=common.log_json)
        return args.handler(args)
    except ConfigError as exc:
        print(f"chase: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chase", description="ChaSe real-time chat")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    add("serve", _serve, "run auth, persistence and gateway in one process (the embedded default)")
    add("auth", _auth, "run the HTTP auth service alone (needs CHASE_AMQP_URL)")
    add("persistence", _persistence, "run the persistence worker alone (needs CHASE_AMQP_URL)")
    add("gateway", _gateway, "run a WebSocket gateway alone (needs CHASE_AMQP_URL)")
    migrate = add("migrate", _migrate, "apply database migrations (CHASE_DATABASE_URL)")
    migrate.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    migrate.add_argument("--down", action="store_true", help="downgrade to REVISION (e.g. base)")
    certs = add("certs", _certs, "make the development CA and server certificate")
    certs.add_argument("--dir", type=Path, default=None, help="output folder (default: CHASE_CERTS_DIR or certs/)")
    certs.add_argument("--name", action="append", default=[], help="extra host name or IP for the server certificate")
    certs.add_argument("--force", action="store_true", help="replace existing files")
    certs.add_argument("--service", action="append", default=[], metavar="NAME",
                       help="one folder DIR/NAME per service with only ca.pem and its own certificate and key "
                       "(for NAME, the --name names and localhost); the CA key stays in --ca-dir")
    certs.add_argument("--ca-dir", type=Path, default=None, help="with --service: where the CA lives (default: DIR/ca)")
    certs.add_argument("--owner", default=None, metavar="UID:GID",
                       help="with --service: owner of the service folders (the services' user)")
    add("settings", _settings, "print the configuration reference (every CHASE_* variable)")
    admin = add("admin", _admin, "operator's tools: users, disable, reset-password, stats, purge-sessions")
    admin_sub = admin.add_subparsers(dest="action", metavar="ACTION", required=True)
    users = admin_sub.add_parser("users", help="list users with their live sessions")
    users.add_argument("--after-id", type=int, default=0, help="start after this user id (paging)")
    users.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    disable = admin_sub.add_parser("disable", help="make an account unusable; its sessions end at once everywhere")
    disable.add_argument("username")
    reset = admin_sub.add_parser("reset-password", help="set a new password (CHASE_PASSWORD or asked); "
                                 "enables a disabled account and ends its sessions")
    reset.add_argument("username")
    admin_sub.add_parser("stats", help="counts of users, live sessions and messages")
    admin_sub.add_parser("purge-sessions", help="delete expired and revoked sessions")
    sub.add_parser("cli", help="command-line client: register, say, tail, chat (chase cli --help)")
    sub.add_parser("client", help="open the desktop client")
    return parser


def _run(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run a service until Ctrl-C or SIGTERM; both stop it cleanly with status 0."""
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(_until_signal(coro_factory))
    except FileNotFoundError as exc:
        print(f"chase: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except _bus_unavailable() as exc:
        print(f"chase: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (Linux, macOS), else asyncio's own (None).

    The services spend their time in TLS and socket writes; uvloop does both in C with less
    memory per connection (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _until_signal(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    import signal

    task = asyncio.ensure_future(coro_factory())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        get_logger("chase").info("stopped")


def _bus_unavailable() -> type[Exception]:
    from chase.bus import BusUnavailable

    return BusUnavailable


def _serve(_: argparse.Namespace) -> int:
    from chase import serve

    return _run(serve.serve_all)


def _auth(_: argparse.Namespace) -> int:
    from chase import serve

    return _run(serve.serve_auth)


def _persistence(_: argparse.Namespace) -> int:
    from chase import serve

    return _run(serve.serve_persistence)


def _gateway(_: argparse.Namespace) -> int:
    from chase import serve

    return _run(serve.serve_gateway)


def _migrate(args: argparse.Namespace) -> int:
    from chase.store import migrate
    from chase.store.engine import check_reachable, create_engine, ensure_database

    settings = load(CommonSettings)

    async def run() -> None:
        if not args.down:
            created = await ensure_database(settings.database_url)
            if created:
                print(created)
        engine = create_engine(settings.database_url)
        try:
            await check_reachable(engine)
            if args.down:
                await migrate.downgrade(engine, args.revision)
            else:
                await migrate.upgrade(engine, args.revision)
        finally:
            await engine.dispose()

    asyncio.run(run())
    direction = "down" if args.down else "up"
    print(f"migrated {direction} to {args.revision}: {_safe_url(settings.database_url)}")
    return 0


def _certs(args: argparse.Namespace) -> int:
    from chase.tls import DEFAULT_NAMES, ensure_dev_certs

    settings = load(CommonSettings)
    directory = args.dir or settings.certs_dir
    names = DEFAULT_NAMES + tuple(args.name)
    if args.service:
        return _service_certs(args, directory, tuple(args.name) + DEFAULT_NAMES)
    made = ensure_dev_certs(directory, names, force=args.force)
    state = "made" if made else "kept existing"
    print(f"{state} development certificates in {directory}{os.sep} (clients trust {directory / 'ca.pem'})")
    return 0


def _service_certs(args: argparse.Namespace, directory: Path, names: tuple[str, ...]) -> int:
    from chase.tls import issue_service_certs

    owner = None
    if args.owner:
        try:
            uid, gid = (int(part) for part in args.owner.split(":"))
        except ValueError:
            raise ConfigError(f"--owner: expected UID:GID as numbers, got {args.owner!r}") from None
        owner = (uid, gid)
    ca_dir = args.ca_dir or directory / "ca"
    issued = issue_service_certs(ca_dir, directory, tuple(args.service), names, owner=owner, force=args.force)
    kept = [s for s in args.service if s not in issued]
    print(f"certificates in {directory}{os.sep}<service>: issued {', '.join(issued) or 'none'}; "
          f"kept {', '.join(kept) or 'none'} (CA key in {ca_dir})")
    return 0


def _admin(args: argparse.Namespace) -> int:
    import json

    from chase.clock import SystemClock
    from services.auth import admin
    from services.auth.settings import AuthSettings

    settings = load(AuthSettings)
    password = _new_password() if args.action == "reset-password" else None

    async def run() -> str:
        async with _admin_deps(settings) as (engine, bus):
            clock = SystemClock()
            match args.action:
                case "users":
                    rows = await admin.list_users(engine, clock, after_id=args.after_id, limit=args.limit)
                    return "\n".join(
                        f"{r.id}\t{r.username}\t{r.created_at:%Y-%m-%dT%H:%M:%SZ}\t"
                        f"{'disabled' if r.disabled else 'active'}\t{r.live_sessions} live sessions"
                        for r in rows
                    ) or "no users"
                case "disable":
                    ended = await admin.disable_user(engine, bus, clock, args.username, rounds=settings.bcrypt_rounds)
                    return f"disabled {args.username}; {ended} sessions ended"
                case "reset-password":
                    assert password is not None
                    ended = await admin.reset_password(engine, bus, clock, args.username, password,
                                                       rounds=settings.bcrypt_rounds)
                    return f"new password set for {args.username}; {ended} sessions ended"
                case "stats":
                    return json.dumps(vars(await admin.counts(engine, clock)))
                case _:
                    return f"purged {await admin.purge_sessions(engine, clock)} expired or revoked sessions"

    try:
        print(asyncio.run(run()))
    except admin.AdminError as exc:
        print(f"chase admin: {exc}", file=sys.stderr)
        return 1
    return 0


def _new_password() -> str:
    password = os.environ.get("CHASE_PASSWORD")
    if password is None:
        import getpass

        password = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ")
    return password


@contextlib.asynccontextmanager
async def _admin_deps(settings: CommonSettings) -> AsyncIterator[tuple[Any, Any]]:
    """The database (must answer) and, when configured, the broker (to reach the gateways)."""
    from chase.bus import BusUnavailable
    from chase.serve import open_bus, open_engine

    async with open_engine(settings, upgrade=False) as engine:
        if settings.embedded:
            yield engine, None
            return
        try:
            async with open_bus(settings) as bus:
                yield engine, bus
        except BusUnavailable as exc:
            raise ConfigError(str(exc)) from None


def _settings(_: argparse.Namespace) -> int:
    from chase.settings_doc import render

    print(render(), end="")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    raise SystemExit(main())
