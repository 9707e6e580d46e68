"""Issue 19: a push a non-bare remote refuses leaves one line in the log, not git's hint."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core import gitops
from tests.conftest import git


def test_refused_push_to_a_checked_out_branch_logs_one_line(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q")
    (a / "f").write_text("1\n")
    git(a, "add", "f")
    git(a, "commit", "-qm", "one")
    git(tmp_path, "clone", "-q", str(a), "b")
    (a / "f").write_text("2\n")
    git(a, "commit", "-qam", "two")
    git(a, "remote", "add", "b", str(tmp_path / "b"))
    with caplog.at_level(logging.INFO, logger="core.gitops"):
        result = gitops.push(a, "b", ["main:main"])
    assert result == {"refs/heads/main": False}
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(info) == 1 and "refs/heads/main refused" in info[0], info
    assert not any("refusing to update checked out branch" in m for m in info)
