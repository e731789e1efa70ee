"""What the run measured about the machine: CPU, memory, versions, load, and CPU time per process.

Everything is read from ``/proc`` (Linux) and from the servers themselves; nothing is assumed.
Reading another process's ``/proc/<pid>/stat`` only looks: the benchmark never signals a
process it did not start.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: Process names (``/proc/<pid>/comm``) of the infrastructure servers whose CPU time is reported.
INFRA_PROCESSES = {"mariadb": ("mariadbd", "mysqld"), "rabbitmq": ("beam.smp",)}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far, or None when it is gone or unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def find_pids(names: tuple[str, ...]) -> list[int]:
    """Pids whose ``comm`` is one of ``names`` (to read their CPU time, nothing else)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() in names:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def busy_seconds() -> float | None:
    """Total non-idle CPU seconds of the machine (all cores) since boot."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICKS


@dataclass
class CpuProbe:
    """CPU seconds of named process groups between :meth:`start` and :meth:`stop`."""

    groups: dict[str, list[int]]

    def _sample(self) -> dict[str, float]:
        sample = {}
        for name, pids in self.groups.items():
            times = [t for t in (cpu_seconds(p) for p in pids) if t is not None]
            sample[name] = sum(times)
        machine = busy_seconds()
        if machine is not None:
            sample["machine (all processes)"] = machine
        return sample

    def start(self) -> None:
        self._before = self._sample()

    def stop(self, wall_seconds: float) -> dict[str, dict[str, float]]:
        """Per group: CPU seconds used and the share of one core over ``wall_seconds``."""
        after = self._sample()
        report = {}
        for name, value in after.items():
            used = value - self._before.get(name, value)
            report[name] = {
                "cpu_seconds": round(used, 2),
                "cores": round(used / wall_seconds, 2) if wall_seconds > 0 else None,
            }
        return report


def infra_groups() -> dict[str, list[int]]:
    return {name: find_pids(comms) for name, comms in INFRA_PROCESSES.items()}


def describe() -> dict[str, object]:
    """The machine as measured now: cores, memory, CPU model, Python, library versions, load."""
    info: dict[str, object] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(total_kib / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        info["memory_gib"] = None
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu_model"] = None
    info["libraries"] = {}
    for package in ("aio-pika", "asyncmy", "aiomysql", "aiosqlite", "SQLAlchemy", "websockets", "uvicorn"):
        try:
            info["libraries"][package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info["libraries"][package] = None
    return info
