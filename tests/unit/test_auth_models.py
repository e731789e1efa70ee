"""The rules for usernames and passwords (models.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.auth.models import LoginRequest, UserCreate


@pytest.mark.parametrize("name", ["abc", "Alice_Smith.2-x", "a" * 32])
def test_good_usernames(name: str) -> None:
    assert UserCreate(username=name, password="a fine passphrase").username == name


@pytest.mark.parametrize("name", ["ab", "a" * 33, "al ice", "ålice", "alice\n", "al/ice", ""])
def test_bad_usernames(name: str) -> None:
    with pytest.raises(ValidationError, match="3 to 32 characters"):
        UserCreate(username=name, password="a fine passphrase")


def test_password_limits_are_characters() -> None:
    UserCreate(username="alice", password="é" * 128)  # 256 bytes: pre-hashed, every one counts
    UserCreate(username="alice", password="🔐" * 8)  # 8 characters, 32 bytes
    with pytest.raises(ValidationError, match="128 characters"):
        UserCreate(username="alice", password="é" * 129)
    with pytest.raises(ValidationError, match="at least 8"):
        UserCreate(username="alice", password="1234567")


def test_login_applies_only_the_byte_limit() -> None:
    assert LoginRequest(username="whatever name", password="short").password == "short"
    with pytest.raises(ValidationError, match="128 characters"):
        LoginRequest(username="alice", password="x" * 129)
    with pytest.raises(ValidationError):
        LoginRequest(username="alice", password="12345679", remember=True)
