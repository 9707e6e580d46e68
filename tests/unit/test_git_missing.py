"""Without git on PATH the person reads that git is missing, not a traceback (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import GitCommandError, GitMissing
from core.gitops import run_git


def test_no_git_on_path_says_install_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(GitMissing, match=r"git is not installed.*apt install git") as e:
        run_git(tmp_path, ["status"])
    assert isinstance(e.value, GitCommandError)  # handled wherever a git failure is


def test_a_vanished_folder_is_not_taken_for_missing_git(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        run_git(tmp_path / "gone", ["status"])
    assert not isinstance(e.value, GitMissing)
