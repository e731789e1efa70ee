"""docs/configuration.md is generated from the settings classes and must match them."""

from __future__ import annotations

from pathlib import Path

from chase.settings_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_configuration_reference_matches_the_code() -> None:
    assert DOC.read_text() == render(), "run `chase settings > docs/configuration.md`"


def test_every_shared_and_service_variable_is_listed() -> None:
    text = render()
    for name in ("CHASE_DATABASE_URL", "CHASE_AMQP_URL", "CHASE_MAX_BODY_CHARS", "CHASE_AUTH_PORT",
                 "CHASE_GATEWAY_ID", "CHASE_GATEWAY_PORT", "CHASE_PERSISTENCE_BATCH_SIZE"):
        assert f"`{name}`" in text
