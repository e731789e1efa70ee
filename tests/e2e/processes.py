"""Run ChaSe as real processes (`chase serve`, or `chase auth` / `persistence` / `gateway`),
the way an operator does, and stop them by PID.

Each process logs to a file under the test's tmp folder; a failing test prints the tail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import port_open, wait_until

CHASE = [sys.executable, "-m", "chase.cli"]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"--- {self.name} ---\n" + "\n".join(text[-lines:])

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        return self.popen.wait(timeout=timeout)


@dataclass
class Processes:
    """The processes one test started; all are stopped (SIGTERM, then SIGKILL) at the end."""

    directory: Path
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, *args: str, **env: str) -> Proc:
        log = self.directory / f"{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            [*CHASE, *args],
            env={**self.env, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 60.0, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CHASE, *args], env={**self.env, **env}, cwd=self.directory,
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()


@contextmanager
def processes(directory: Path, **env: str) -> Iterator[Processes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHASE_")}
    group = Processes(directory, {**base, "CHASE_LOG_LEVEL": "info", **env})
    try:
        yield group
    finally:
        group.stop_all()
        print(group.logs())  # pytest shows it when the test fails


async def wait_for_ports(procs: Processes, *ports: int, timeout: float = 30.0) -> None:
    async def ready() -> bool:
        for proc in procs.procs:
            if proc.popen.poll() is not None:
                raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}\n{proc.tail()}")
        return all([await port_open(p) for p in ports])

    await wait_until(ready, timeout=timeout)
