"""A repository whose folder vanished (unplugged drive, moved) is not recreated
by a write that needs a directory under ``.git/annex`` (core.repo.dirs): the
write fails and the daemon sees the folder missing (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.repo.dirs import annex_dirs
from core.repo.repository import AnnexRepo

KEY = "SHA256E-s1--6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"


def test_a_journal_write_into_a_vanished_repository_fails_and_creates_nothing(
        tmp_path: Path) -> None:
    folder = tmp_path / "r"
    repo = AnnexRepo.init(folder, "r")
    uuid = repo.uuid
    folder.rename(tmp_path / "unplugged")
    with pytest.raises(OSError):
        repo.state.set_location(KEY, uuid, True, immediately=True)
    assert not folder.exists()  # no skeleton of the repository appeared


def test_annex_dirs_makes_what_is_below_annex(tmp_path: Path) -> None:
    gitdir = tmp_path / ".git"
    gitdir.mkdir()
    annex_dirs(gitdir / "annex" / "transfer" / "download" / "lck")
    assert (gitdir / "annex" / "transfer" / "download" / "lck").is_dir()
    annex_dirs(gitdir / "annex" / "transfer")  # already there: fine
    with pytest.raises(FileNotFoundError):
        annex_dirs(tmp_path / "gone" / ".git" / "annex" / "journal")
    assert not (tmp_path / "gone").exists()


def test_annex_dirs_says_whether_it_made_the_directory(tmp_path: Path) -> None:
    """True only when ``path`` itself was made: ``ObjectStore._place`` then skips
    making it writable (a directory made just now is)."""
    gitdir = tmp_path / ".git"
    gitdir.mkdir()
    key_dir = gitdir / "annex" / "objects" / "ab" / "cd" / "K"
    assert annex_dirs(key_dir) is True and key_dir.is_dir()
    assert annex_dirs(key_dir) is False
    assert annex_dirs(key_dir.parent / "K2") is True  # one level missing
    assert annex_dirs(gitdir / "annex") is False
