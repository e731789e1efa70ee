"""docs/configuration.md is generated from the settings classes and must match them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from chase.settings_doc import render, variables

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_configuration_reference_matches_the_code() -> None:
    assert DOC.read_text() == render(), "run `chase settings > docs/configuration.md`"


def test_every_shared_and_service_variable_is_listed() -> None:
    text = render()
    for name in ("CHASE_DATABASE_URL", "CHASE_AMQP_URL", "CHASE_MAX_BODY_CHARS", "CHASE_AUTH_PORT",
                 "CHASE_GATEWAY_ID", "CHASE_GATEWAY_PORT", "CHASE_PERSISTENCE_BATCH_SIZE"):
        assert f"`{name}`" in text


# --- every variable the code reads is documented, every variable a doc names exists ---------

ROOT = DOC.parents[1]
SOURCE_DIRS = ("chase", "services", "client", "bench", "scripts")
#: A variable name as written in prose or code (not a prefix such as `CHASE_AUTH_`).
VARIABLE = re.compile(r"\bCHASE_[A-Z0-9_]*[A-Z0-9]\b")


def _env_reads(path: Path) -> set[str]:
    """The literal names read with os.environ.get / os.getenv / os.environ[...] in one module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        target = None
        if isinstance(node, ast.Call) and node.args:
            func = ast.unparse(node.func)
            if func in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                target = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ"):
            target = node.slice
        if target is None:
            continue
        if isinstance(target, ast.Name):  # a module constant: ENV_USER = "CHASE_USER"
            target = _constant(path, target.id)
        if isinstance(target, ast.Constant) and isinstance(target.value, str) and target.value.startswith("CHASE_"):
            names.add(target.value)
        elif target is not None and not isinstance(target, ast.Constant):
            raise AssertionError(f"{path}: an environment read this test cannot follow: {ast.unparse(target)}")
    return names


def _constant(path: Path, name: str) -> ast.AST | None:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
    return None


def _code_reads() -> set[str]:
    return {name for d in SOURCE_DIRS for path in (ROOT / d).rglob("*.py") for name in _env_reads(path)}


def _documents() -> dict[str, str]:
    docs = {str(p.relative_to(ROOT)): p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    docs.update({str(p.relative_to(ROOT)): p.read_text() for p in ROOT.glob("*/README.md")})
    # In the compose file, only the comments are prose; its ${CHASE_DB_PASSWORD} and the like
    # are the compose file's own variables, not ChaSe settings.
    compose = (ROOT / "docker-compose.yml").read_text().splitlines()
    docs["docker-compose.yml"] = "\n".join(line.split("#", 1)[1] for line in compose if "#" in line)
    return docs


def test_every_variable_the_code_reads_is_in_the_configuration_reference() -> None:
    reads = _code_reads() | variables()
    assert {"CHASE_USER", "CHASE_PASSWORD", "CHASE_DATABASE_URL", "CHASE_GATEWAY_AUTH_URL"} <= reads
    listed = set(re.findall(r"^\| `(CHASE_[A-Z0-9_]+)` \|", DOC.read_text(), re.MULTILINE))
    assert reads - listed == set(), "run `chase settings > docs/configuration.md`"


def _compose_variables() -> set[str]:
    """The compose files' own ``${CHASE_...}`` variables (published ports, passwords): not
    ChaSe settings, but they exist, and docs/operations.md explains them."""
    return {name for path in ROOT.glob("docker-compose*.yml") for name in re.findall(r"\$\{(CHASE_[A-Z0-9_]+)", path.read_text())}


def test_every_variable_a_document_names_exists() -> None:
    known = variables() | _compose_variables()
    unknown = {
        f"{doc}: {name}" for doc, text in _documents().items() for name in VARIABLE.findall(text) if name not in known
    }
    assert unknown == set()


def test_the_document_check_sees_a_name_that_does_not_exist() -> None:
    assert VARIABLE.findall("set `CHASE_GATEWAY_MAX_BODY_CHARS` or `CHASE_AUTH_` / `_MAX`") == [
        "CHASE_GATEWAY_MAX_BODY_CHARS"
    ]
    assert "CHASE_GATEWAY_MAX_BODY_CHARS" not in variables()
