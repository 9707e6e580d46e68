"""A file that goes while the tree is scanned is no candidate for adding.

The daemon's scan (``jobs.scan_all``) ran into a file that a merge had just
renamed into its variants: ``FileNotFoundError`` from its ``lstat`` ended the
repository's worker ("stopped after an internal error").
"""

from __future__ import annotations

from pathlib import Path

from core.ops.add import Adder
from core.repo.repository import AnnexRepo
from tests.conftest import git


def test_a_file_gone_during_the_scan_is_no_candidate(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "r")
    top = tmp_path / "r"
    (top / "a.txt").write_text("a\n")
    (top / "b.txt").write_text("b\n")
    repo = AnnexRepo.init(top, "r")
    try:
        found = Adder(repo).candidates([str(top)])
        assert next(found) == "a.txt"  # the directory is listed; b.txt is next
        (top / "b.txt").unlink()  # as a merge renames it
        assert list(found) == []
    finally:
        repo.close()
