"""The layering rules of the house style, checked on the real import graph.

- Every module imports with an empty environment, and importing connects to nothing.
- The client core imports no Qt; Qt is imported in one module of the desktop client.
- Only the RabbitMQ adapter imports aio-pika; the sans-I/O gateway session imports no asyncio.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chase", "services", "client")


def _modules() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _importers_of(prefix: str) -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for path in _modules()
        if any(name == prefix or name.startswith(prefix + ".") for name in _imports(path))
    }


def test_every_module_imports_with_an_empty_environment() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import chase, services, client\n"
        "for pkg in (chase, services, client):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if 'migrations' not in m.name:\n"
        "            importlib.import_module(m.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"}, cwd="/", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_qt_is_imported_in_one_module_and_never_by_the_client_core() -> None:
    assert _importers_of("PyQt6") == {"client/qt/qt.py"}
    core = {f"client/core/{p.name}" for p in (ROOT / "client" / "core").glob("*.py")}
    assert not core & _importers_of("client.qt")


def test_only_the_rabbitmq_adapter_imports_aio_pika() -> None:
    assert _importers_of("aio_pika") <= {"chase/bus/rabbitmq.py"}
    assert _importers_of("aiormq") <= {"chase/bus/rabbitmq.py"}


@pytest.mark.parametrize(
    "module",
    ["services/gateway/session.py", "services/gateway/presence.py", "services/gateway/availability.py",
     "services/gateway/ratelimit.py"],
)
def test_the_gateway_core_is_sans_io(module: str) -> None:
    forbidden = {"asyncio", "websockets", "aio_pika", "chase.bus.rabbitmq", "chase.bus.memory"}
    assert not _imports(ROOT / module) & forbidden
