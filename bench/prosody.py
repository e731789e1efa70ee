"""Prosody (Debian's package) under the fan-out workload: a MUC room with its archive on.

The benchmark starts its own Prosody: an unprivileged child process (the ``prosody`` user when
the benchmark runs as root, else the benchmark's own user) with a config of its own in a
temporary folder. What it runs:

- one virtual host ``localhost``, c2s on a direct-TLS port of 127.0.0.1 only (XEP-0368; no
  plain-text port, so every client speaks TLS), the run's dev certificate (signed by the run's
  CA, which the clients verify), accounts in SQLite (``storage = "sql"``), SASL PLAIN;
- a MUC component ``muc.localhost`` with ``mod_muc_mam``: every groupchat message is archived
  to the same SQLite database before it goes out, as ChaSe stores a message before its
  fan-out;
- ``mod_limits`` loaded with c2s at 1 GB/s: the benchmark's senders are far faster than a
  person, as for ChaSe's rate limit, which the benchmark raises too;
- in-band registration (XEP-0077) open to 127.0.0.1: the benchmark makes its accounts over
  the protocol, as set-up before any load.

The clients (``XmppClient``) speak XMPP directly over TLS with stanza strings, the real
protocol and nothing else: stream, SASL PLAIN, resource binding, MUC join presence (no
history), groupchat messages; on reconnect (the storm) a MAM query of the room's archive
(``max 1``), as a ChaSe client asks for a sync page. Like the WebSocket receivers of
``bench.fanout`` they read with a few byte operations per chunk, not an XML parser, so that
the load generator takes as little of the shared CPU as it can.
"""

from __future__ import annotations

import asyncio
import base64
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fanout import Tally
from bench.systems import unused_port

DOMAIN = "localhost"
MUC = f"muc.{DOMAIN}"
ROOM = f"fanout@{MUC}"
#: The system user Debian's package makes; Prosody runs as it when the benchmark is root.
PROSODY_USER = "prosody"
_STREAM = (f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' "
           "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode()
#: How long the first connect of all N may take. Every join sends the newcomer's presence to
#: everyone in the room (and everyone's to the newcomer), as ChaSe sends a presence frame to
#: every connection on each connect: N joins cost O(N²) stanzas, which takes Prosody minutes
#: at N = 1,000 on a busy machine.
CONNECT_SECONDS = 900.0
_BODY = b"<body>s"
_CLOSE = b"</body>"


def unavailable() -> str | None:
    """Why Prosody cannot run here (None: it can)."""
    if shutil.which("prosody") is None:
        return "prosody is not installed (deploy/install-bench-deps.sh installs Debian's package, as root)"
    if not any(Path(p).exists() for p in ("/usr/lib/x86_64-linux-gnu/lua/5.4/dbd/sqlite3.so",
                                          "/usr/lib/aarch64-linux-gnu/lua/5.4/dbd/sqlite3.so",
                                          "/usr/local/lib/lua/5.4/dbd/sqlite3.so")):
        return "LuaDBI's SQLite driver is missing (lua-dbi-sqlite3), which Prosody's SQL storage needs"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PROSODY_USER)
        except KeyError:
            return f"running as root and there is no {PROSODY_USER!r} user to run Prosody as"
    return None


def version() -> str | None:
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "prosody"], capture_output=True, text=True,
                              timeout=10, check=False)
    except OSError:
        return None
    return done.stdout.strip() or None


def config(directory: Path, port: int) -> str:
    """The whole Prosody config of one run (Lua)."""
    return f"""-- Written by bench/prosody.py for one benchmark run.
data_path = "{directory / 'data'}"
pidfile = "{directory / 'prosody.pid'}"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{directory / 'prosody.log'}" }} }}
plugin_paths = {{}}
network_backend = "epoll"

interfaces = {{ "127.0.0.1" }}
c2s_ports = {{}}
c2s_direct_tls_ports = {{ {port} }}
c2s_require_encryption = true
s2s_ports = {{}}
modules_disabled = {{ "s2s", "s2s_auth_certs", "offline" }}
certificates = "{directory}"
ssl = {{ certificate = "{directory / 'server.pem'}"; key = "{directory / 'server-key.pem'}" }}

storage = "sql"
sql = {{ driver = "SQLite3"; database = "{directory / 'prosody.sqlite'}" }}
authentication = "internal_hashed"
-- Making the accounts is set-up, not load (ChaSe's bcrypt cost is lowered for the run too):
-- SCRAM's minimum (RFC 7677) instead of Prosody's 10,000 PBKDF2 iterations.
default_iteration_count = 4096
allow_registration = true
registration_allowlist = {{ "127.0.0.1" }}

modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "register", "limits" }}
limits = {{ c2s = {{ rate = "1000mb/s"; burst = "10s" }} }}

VirtualHost "{DOMAIN}"

Component "{MUC}" "muc"
    modules_enabled = {{ "muc_mam" }}
    muc_room_locking = false
    muc_room_default_persistent = true
    muc_log_by_default = true
    muc_log_all_rooms = true
    muc_log_expires_after = "never"
    restrict_room_creation = false
"""


@dataclass
class RunningProsody:
    port: int
    pid: int
    ca_path: Path
    directory: Path
    version: str | None
    #: Filled on exit: anything odd about how the process stopped.
    problems: list[str] = field(default_factory=list)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.directory / "prosody.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


@asynccontextmanager
async def running(certs_dir: Path, *, keep_log: Path | None = None) -> AsyncIterator[RunningProsody]:
    """Prosody with its own config, data and TLS certificate in a temporary folder; stopped on exit
    (SIGTERM, then SIGKILL), also when the block fails. ``keep_log``: copy its log there at the end."""
    directory = Path(tempfile.mkdtemp(prefix="chase-bench-prosody-"))
    as_root = os.geteuid() == 0
    popen = None
    result = None
    try:
        port = _prepare(directory, certs_dir, as_root=as_root)
        with (directory / "stdout.log").open("wb") as out:
            popen = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
                ["prosody", "--config", str(directory / "prosody.cfg.lua"), "-F"], stdout=out,
                stderr=subprocess.STDOUT, cwd=directory,
                user=PROSODY_USER if as_root else None, group=PROSODY_USER if as_root else None,
                extra_groups=[] if as_root else None)
        result = RunningProsody(port=port, pid=popen.pid, ca_path=certs_dir / "ca.pem", directory=directory,
                                version=version())
        await _wait_ready(popen, port, result)
        yield result
    finally:
        if popen is not None:
            problems = _stop(popen)
            if result is not None:
                if "Traceback" in result.log_tail(10_000) or "\terror\t" in result.log_tail(10_000):
                    problems.append("prosody logged errors\n" + _errors(result))
                result.problems = problems
        if keep_log is not None and (directory / "prosody.log").exists():
            shutil.copy(directory / "prosody.log", keep_log)
        shutil.rmtree(directory, ignore_errors=True)


def _prepare(directory: Path, certs_dir: Path, *, as_root: bool) -> int:
    """The config, the certificate and an empty data folder, owned by whoever runs Prosody; its port."""
    (directory / "data").mkdir()
    shutil.copy(certs_dir / "server.pem", directory / "server.pem")
    shutil.copy(certs_dir / "server-key.pem", directory / "server-key.pem")
    (directory / "server-key.pem").chmod(0o600)
    port = unused_port()
    (directory / "prosody.cfg.lua").write_text(config(directory, port))
    if as_root:
        account = pwd.getpwnam(PROSODY_USER)
        for path in [directory, *directory.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)
    return port


def _errors(result: RunningProsody) -> str:
    lines = result.log_tail(10_000).splitlines()
    return "\n".join([line for line in lines if "\terror\t" in line or "Traceback" in line][:10])


async def _wait_ready(popen: subprocess.Popen[bytes], port: int, result: RunningProsody,
                      timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if popen.poll() is not None:
            out = (result.directory / "stdout.log").read_text(errors="replace")
            raise RuntimeError(f"prosody exited with {popen.returncode}\n{out[-2000:]}\n{result.log_tail()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            pass
        else:
            writer.close()
            await writer.wait_closed()
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"prosody did not listen on {port} within {timeout}s\n{result.log_tail()}")
        await asyncio.sleep(0.1)


def _stop(popen: subprocess.Popen[bytes], grace: float = 15.0) -> list[str]:
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
    try:
        code = popen.wait(grace)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
        return [f"prosody did not stop on SIGTERM within {grace}s: killed"]
    return [] if code in (0, -signal.SIGTERM) else [f"prosody exited with {code}"]


# --- the client ----------------------------------------------------------------------------------


class XmppError(Exception):
    """The server said no (a SASL failure, a stanza error, a stream error) or closed the stream."""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")


class XmppClient(asyncio.Protocol):
    """One XMPP client over TLS. Logging in, it waits for what the server says next; once in the
    room (``steady``) it only counts the message bodies it reads (``<body>s<step>t<ns>``)."""

    def __init__(self, tally: Tally | None) -> None:
        self.tally = tally
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.steady = False
        self.waiting: tuple[tuple[bytes, ...], asyncio.Future[bytes]] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._fail(XmppError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        if not self.steady:
            start = max(0, len(buf) - 64)
            buf += data
            self._check(start)
            return
        buf += data
        cut = buf.rfind(_CLOSE)
        if cut < 0:
            if len(buf) > 65536:  # presence of others joining, no message: keep only a tail
                del buf[:-64]
            return
        tally = self.tally
        if tally is not None:
            now = time.perf_counter_ns()
            i = buf.find(_BODY, 0, cut)
            while i >= 0:
                # <body>s<2 digits of step>t<19 digits of perf_counter_ns>
                step = int(buf[i + 7:i + 9])
                sent = int(buf[i + 10:i + 29])
                tally.counts[step] = tally.counts.get(step, 0) + 1
                tally.latencies.setdefault(step, []).append((now - sent) / 1e9)
                tally.last_arrival[step] = now / 1e9
                i = buf.find(_BODY, i + 29, cut)
        del buf[:cut + len(_CLOSE)]

    # logging in

    def _check(self, start: int) -> None:
        if self.waiting is None:
            return
        marks, future = self.waiting
        buf = self.buffer
        for bad in (b"<failure", b"<stream:error", b"type='error'", b'type="error"'):
            j = buf.find(bad, start)
            if j >= 0:
                self._fail(XmppError(bytes(buf[j:j + 400]).decode(errors="replace")))
                return
        for mark in marks:
            j = buf.find(mark, start)
            if j >= 0:
                self.waiting = None
                # What came with the mark (up to the end of its tag) is the answer; the rest stays.
                end = buf.find(b">", j + len(mark))
                end = len(buf) if end < 0 else end + 1
                answer = bytes(buf[:end])
                del buf[:end]
                if not future.done():
                    future.set_result(answer)
                return

    def _fail(self, exc: Exception) -> None:
        if self.waiting is not None:
            future = self.waiting[1]
            self.waiting = None
            if not future.done():
                future.set_exception(exc)

    async def expect(self, *marks: bytes) -> bytes:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting = (marks, future)
        if self.closed.done():
            raise XmppError("connection closed")
        self._check(0)
        return await future

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def login(self, user: str, password: str, resource: str) -> None:
        self.send(_STREAM)
        await self.expect(b"</stream:features>")
        plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>".encode())
        await self.expect(b"<success")
        self.buffer.clear()
        self.send(_STREAM)  # a new stream after SASL
        await self.expect(b"</stream:features>")
        self.send(f"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"
                  f"{_escape(resource)}</resource></bind></iq>".encode())
        await self.expect(b"</iq>")

    async def join(self, nick: str, *, archive_query: bool) -> bool:
        """Enter the room (no history); with ``archive_query``, then read the last message of its
        archive (MAM). True once the archive answered (False: not asked)."""
        self.send(f"<presence to='{ROOM}/{_escape(nick)}'><x xmlns='http://jabber.org/protocol/muc'>"
                  "<history maxstanzas='0'/></x></presence>".encode())
        await self.expect(b"code='110'", b'code="110"')  # our own presence: we are in
        if self.tally is not None:
            self.tally.hellos += 1
        if archive_query:
            self.send(f"<iq type='set' to='{ROOM}' id='mam'><query xmlns='urn:xmpp:mam:2'>"
                      "<set xmlns='http://jabber.org/protocol/rsm'><max>1</max><before/></set></query></iq>".encode())
            await self.expect(b"<fin")
            if self.tally is not None:
                self.tally.synced += 1
        self.buffer.clear()
        self.steady = True
        return archive_query

    def post(self, body: str) -> None:
        self.send(f"<message to='{ROOM}' type='groupchat'><body>{body}</body></message>".encode())

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def _connect(port: int, context: ssl.SSLContext, tally: Tally | None) -> XmppClient:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: XmppClient(tally), "127.0.0.1", port, ssl=context,
                                             server_hostname=DOMAIN)
    return client


async def register(port: int, context: ssl.SSLContext, users: list[str], password: str,
                   concurrency: int = 10) -> None:
    """Make the accounts over the protocol (XEP-0077 in-band registration)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(user: str) -> None:
        async with gate:
            client = await _connect(port, context, None)
            try:
                client.send(_STREAM)
                await client.expect(b"</stream:features>")
                client.send(f"<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>{user}</username>"
                            f"<password>{_escape(password)}</password></query></iq>".encode())
                await client.expect(b"id='reg'", b'id="reg"')
                client.send(b"</stream:stream>")
            finally:
                client.abort()

    await asyncio.gather(*(one(u) for u in users))


class XmppDriver:
    """How ``bench.fanout.measure_system`` speaks to Prosody: the workload is the same as for
    the WebSocket systems, only the wire differs. A "token" is an account name."""

    def __init__(self, port: int, context: ssl.SSLContext, password: str) -> None:
        self.port = port
        self.context = context
        self.password = password

    async def _client(self, user: str, tally: Tally, *, archive_query: bool) -> XmppClient:
        client = await _connect(self.port, self.context, tally)
        try:
            await client.login(user, self.password, "bench")
            await client.join(user, archive_query=archive_query)
        except BaseException:
            client.abort()
            raise
        return client

    async def open_receivers(self, users: list[Any], tally: Tally, *, concurrency: int = 10,
                             timeout: float = CONNECT_SECONDS) -> list[XmppClient]:
        """Log in and join, ``concurrency`` at a time. Those not in the room within ``timeout`` are
        given up and counted in ``tally.closes`` (the others are measured), not raised."""
        gate = asyncio.Semaphore(concurrency)
        clients: list[XmppClient] = []

        async def one(user: str) -> None:
            async with gate:
                try:
                    clients.append(await self._client(user, tally, archive_query=tally.sync_after_hello))
                except (OSError, ssl.SSLError, XmppError) as exc:
                    why = f"{type(exc).__name__}: {str(exc)[:80]}"
                    tally.closes[why] = tally.closes.get(why, 0) + 1

        tasks = [asyncio.ensure_future(one(u)) for u in users]
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            why = f"not in the room within {timeout:.0f} s"
            tally.closes[why] = tally.closes.get(why, 0) + len(pending)
        return clients

    def close(self, clients: list[XmppClient]) -> None:
        for c in clients:
            c.abort()

    async def open_sender(self, user: Any) -> XmppSender:
        return XmppSender(await self._client(user, Tally(), archive_query=False))


class XmppSender:
    def __init__(self, client: XmppClient) -> None:
        self.client = client

    async def post(self, body: str, client_msg_id: str) -> bool:
        if self.client.closed.done():
            return False
        self.client.post(body)
        return True

    async def close(self) -> None:
        if not self.client.closed.done() and self.client.transport is not None:
            self.client.send(b"</stream:stream>")
        self.client.abort()
