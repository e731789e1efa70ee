"""The system under test as real processes, started the way an operator starts them.

- :func:`fleet`: ``chase migrate``, then ``chase auth``, one ``chase persistence`` worker and one
  ``chase gateway``, each its own process, on the real RabbitMQ and MariaDB.
- :func:`embedded`: ``chase serve``, one process on SQLite and the in-process bus.

Both yield a :class:`Running` with the URLs, the CA to trust and the pids (for CPU probes), and
stop every process they started by its pid (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

CHASE = [sys.executable, "-m", "chase.cli"]
#: The repository root: the processes run from it so ``python -m chase.cli`` finds the code.
ROOT = Path(__file__).resolve().parent.parent
#: A person types far below the gateway's default 20 frames/s (burst 40) per connection; the
#: benchmark's senders do not, so the limit is raised for the run (and reported).
UNLIMITED_RATE = {"CHASE_GATEWAY_RATE_PER_SECOND": "1000000", "CHASE_GATEWAY_RATE_BURST": "1000000"}


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"--- {self.name} (last {lines} log lines) ---\n" + "\n".join(text[-lines:])


@dataclass
class Group:
    """The processes one system run started, in a folder of their own (logs, SQLite file)."""

    directory: Path
    env: dict[str, str]
    #: When set, each service runs under cProfile and writes ``<name>.prof`` here on exit.
    profile_dir: Path | None = None
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, *args: str, **env: str) -> Proc:
        log = self.directory / f"{name}.log"
        command = CHASE
        if self.profile_dir is not None:
            command = [sys.executable, "-m", "cProfile", "-o", str(self.profile_dir / f"{name}.prof"), *CHASE[1:]]
        with log.open("wb") as handle:
            popen = subprocess.Popen([*command, *args], env={**self.env, **env}, stdout=handle,
                                     stderr=subprocess.STDOUT, cwd=ROOT)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 120.0) -> None:
        done = subprocess.run([*CHASE, *args], env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"chase {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")

    async def wait_ready(self, ports: list[int], *, log_line: tuple[Proc, str] | None = None,
                         timeout: float = 60.0) -> None:
        """Until every port accepts and ``log_line`` appeared; fails fast if a process exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for proc in self.procs:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}\n{proc.tail()}")
            ready = all([await _port_open(p) for p in ports])
            if ready and log_line is not None:
                ready = log_line[1] in log_line[0].log.read_text(errors="replace")
            if ready:
                return
            if loop.time() > deadline:
                raise RuntimeError("the system did not become ready in time\n" + "\n".join(p.tail() for p in self.procs))
            await asyncio.sleep(0.1)

    def stop_all(self, grace: float = 15.0) -> list[str]:
        """SIGTERM every process started here, then SIGKILL those still running; the problems."""
        problems = []
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                code = proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
                problems.append(f"{proc.name} did not stop on SIGTERM within {grace}s: killed")
                continue
            if code not in (0, -signal.SIGTERM):
                problems.append(f"{proc.name} exited with {code}")
            text = proc.log.read_text(errors="replace")
            if "Traceback" in text:
                # The first traceback itself, with the line before it (what failed): the log's
                # last lines are usually the shutdown, and the directory is gone after the run.
                lines = text.splitlines()
                first = next(i for i, line in enumerate(lines) if "Traceback" in line)
                shown = "\n".join(lines[max(0, first - 2):first + 40])
                problems.append(f"{proc.name} logged a traceback\n--- {proc.name} (first traceback) ---\n{shown}")
        return problems


@dataclass
class Running:
    auth_url: str
    gateway_url: str
    ca_path: Path
    pids: dict[str, int]
    group: Group
    #: Filled on exit: anything odd about how the processes stopped.
    problems: list[str] = field(default_factory=list)


def _base_env(certs_dir: Path, auth_port: int, gateway_port: int, overrides: dict[str, str]) -> dict[str, str]:
    # The parent's CHASE_* settings must not leak into the system under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHASE_")}
    env.update({
        "CHASE_CERTS_DIR": str(certs_dir),
        "CHASE_LOG_LEVEL": "info",
        "CHASE_AUTH_PORT": str(auth_port),
        # Registration of the benchmark's users is set-up, not load: cheap hashes.
        "CHASE_AUTH_BCRYPT_ROUNDS": "4",
        # Hundreds of users log in at once from one address; the throttle charges each login
        # before its password is checked, so concurrent ones would look like failures.
        "CHASE_AUTH_LOGIN_FREE_FAILURES_PER_ADDRESS": "1000000",
        "CHASE_GATEWAY_PORT": str(gateway_port),
        **UNLIMITED_RATE,
    })
    env.update(overrides)
    return env


@asynccontextmanager
async def fleet(directory: Path, certs_dir: Path, *, database_url: str, amqp_url: str,
                namespace: str, overrides: dict[str, str] | None = None,
                profile_dir: Path | None = None) -> AsyncIterator[Running]:
    """auth + one persistence worker + one gateway, each a process, on RabbitMQ and MariaDB."""
    auth_port, gateway_port = unused_port(), unused_port()
    env = _base_env(certs_dir, auth_port, gateway_port, overrides or {})
    env.update({"CHASE_DATABASE_URL": database_url, "CHASE_AMQP_URL": amqp_url, "CHASE_BUS_NAMESPACE": namespace,
                "CHASE_GATEWAY_ID": "bench-gw", "CHASE_GATEWAY_AUTH_URL": f"https://127.0.0.1:{auth_port}"})
    group = Group(directory, env, profile_dir)
    running = None
    try:
        group.run("migrate")
        auth = group.start("auth", "auth")
        worker = group.start("persistence", "persistence")
        await group.wait_ready([auth_port], log_line=(worker, "persistence_started"))
        gateway = group.start("gateway", "gateway")
        await group.wait_ready([auth_port, gateway_port])
        running = Running(
            auth_url=f"https://127.0.0.1:{auth_port}",
            gateway_url=f"wss://127.0.0.1:{gateway_port}",
            ca_path=certs_dir / "ca.pem",
            pids={"auth": auth.popen.pid, "persistence": worker.popen.pid, "gateway": gateway.popen.pid},
            group=group,
        )
        yield running
    finally:
        problems = group.stop_all()
        if running is not None:
            running.problems = problems


@asynccontextmanager
async def embedded(directory: Path, certs_dir: Path, *, overrides: dict[str, str] | None = None,
                   profile_dir: Path | None = None) -> AsyncIterator[Running]:
    """``chase serve``: the whole system in one process, SQLite in ``directory``, in-process bus
    (its gateway checks tokens with its own auth service, as `chase serve` does unless told a URL)."""
    auth_port, gateway_port = unused_port(), unused_port()
    env = _base_env(certs_dir, auth_port, gateway_port, overrides or {})
    env["CHASE_DATABASE_URL"] = f"sqlite+aiosqlite:///{directory / 'chase.db'}"
    group = Group(directory, env, profile_dir)
    running = None
    try:
        serve = group.start("serve", "serve")
        await group.wait_ready([auth_port, gateway_port])
        running = Running(
            auth_url=f"https://127.0.0.1:{auth_port}",
            gateway_url=f"wss://127.0.0.1:{gateway_port}",
            ca_path=certs_dir / "ca.pem",
            pids={"serve": serve.popen.pid},
            group=group,
        )
        yield running
    finally:
        problems = group.stop_all()
        if running is not None:
            running.problems = problems


@asynccontextmanager
async def bare(directory: Path, certs_dir: Path) -> AsyncIterator[Running]:
    """``bench.bare``: the minimal ``websockets`` broadcast server (the ceiling), one process."""
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - set-up, before any load
    here = Path(__file__).resolve().parent.parent  # noqa: ASYNC240
    port = unused_port()
    group = Group(directory, {k: v for k, v in os.environ.items() if not k.startswith("CHASE_")})
    log = directory / "bare.log"
    with log.open("wb") as handle:
        popen = subprocess.Popen([sys.executable, "-m", "bench.bare", "--port", str(port),  # noqa: ASYNC220
                                  "--cert", str(certs_dir / "server.pem"), "--key", str(certs_dir / "server-key.pem")],
                                 stdout=handle, stderr=subprocess.STDOUT, cwd=here)
    group.procs.append(Proc("bare", popen, log))
    running = None
    try:
        await group.wait_ready([port])
        running = Running(auth_url="", gateway_url=f"wss://127.0.0.1:{port}", ca_path=certs_dir / "ca.pem",
                          pids={"bare": popen.pid}, group=group)
        yield running
    finally:
        problems = group.stop_all()
        if running is not None:
            running.problems = problems
