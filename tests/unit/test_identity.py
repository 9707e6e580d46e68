"""Building a commit never fails for lack of an identity (core.repo.identity)."""

from __future__ import annotations

import pwd

import pytest
from dulwich.config import ConfigDict

from core.repo.identity import commit_identity, login_name


@pytest.fixture
def no_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A uid without a passwd entry and no login variables (containers do this)."""
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME", "EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)

    def missing(uid: int) -> pwd.struct_passwd:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", missing)


def test_no_passwd_entry_gives_unknown(no_user: None) -> None:
    assert login_name() == "unknown"
    assert commit_identity(ConfigDict(), "COMMITTER") == b"unknown <unknown>"


def test_no_passwd_entry_keeps_configured_values(no_user: None) -> None:
    config = ConfigDict()
    config.set((b"user",), b"name", b"Ann")
    config.set((b"user",), b"email", b"ann@example.com")
    assert commit_identity(config, "AUTHOR") == b"Ann <ann@example.com>"


def test_environment_wins_over_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ConfigDict()
    config.set((b"user",), b"name", b"Ann")
    config.set((b"user",), b"email", b"ann@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Bob")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "bob@example.com")
    assert commit_identity(config, "COMMITTER") == b"Bob <bob@example.com>"

