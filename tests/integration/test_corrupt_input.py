"""Bad input gets a clear error naming where it is, and nothing else is lost."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from core.ops.add import add
from core.ops.files import annexed_files
from core.ops.query import whereis
from core.repo.repository import AnnexRepo
from core.repo.state import location_log_path
from tests.conftest import annex, git


def repo_with_files(tmp_path: Path) -> AnnexRepo:
    repo = AnnexRepo.init(tmp_path / "r", "r")
    os.chdir(repo.path)
    (repo.path / "a.txt").write_bytes(b"a\n")
    (repo.path / "b.txt").write_bytes(b"b\n")
    add(repo, ["."])
    git(repo.path, "commit", "-q", "-m", "x")
    return AnnexRepo.open(repo.path)


@pytest.mark.interop
def test_corrupt_log_line_named_and_rest_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    repo = repo_with_files(tmp_path)
    key = next(f.key for f in annexed_files(repo) if f.path == "a.txt")
    path = location_log_path(key)
    good = repo.branch.read(path) or b""
    repo.branch.change(path, lambda _old: good + b"garbage that is not a log line\n")
    with caplog.at_level(logging.WARNING):
        found = {w.path: {c.uuid for c in w.copies} for w in whereis(repo)}
    assert found["a.txt"] == {repo.uuid}
    assert any(path in r.getMessage() and "line 2" in r.getMessage() for r in caplog.records)
    # real git-annex reads the same log the same way
    repo.branch.commit()
    assert repo.uuid in annex(repo.path, "whereis", "a.txt")


def test_malformed_key_in_link_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    repo = repo_with_files(tmp_path)
    bad = repo.path / "bad.txt"
    os.symlink(".git/annex/objects/xx/yy/SHA256E-m5-s0--abc/SHA256E-m5-s0--abc", bad)
    git(repo.path, "add", "bad.txt")
    with caplog.at_level(logging.WARNING):
        paths = [f.path for f in annexed_files(repo)]
    assert paths == ["a.txt", "b.txt"]
    assert any("bad.txt" in r.getMessage() and "out of order" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "setup,why",
    [
        (["-c", "annex.tune.objecthashlower=true", "-c", "annex.tune.branchhash1=true"], "branchhash1"),
        (["-c", "annex.tune.objecthash1=true"], "objecthash1"),
    ],
)
@pytest.mark.interop
def test_tuned_repository_refused(tmp_path: Path, setup: list[str], why: str) -> None:
    top = tmp_path / "tuned"
    top.mkdir()
    git(top, "init", "-q")
    from tests.conftest import run

    run(["git", *setup, "annex", "init", "-q"], top)
    (top / "f").write_bytes(b"f\n")
    os.chdir(top)
    repo = AnnexRepo.open(top)
    reason = repo.unsupported_reason()
    assert reason is not None and why in reason
    with pytest.raises(Exception, match="support"):
        add(repo, ["f"])
    assert (top / "f").read_bytes() == b"f\n" and not (top / "f").is_symlink()


@pytest.mark.interop
def test_private_and_forgotten_repositories_refused(tmp_path: Path, annex_repo: Path) -> None:
    git(annex_repo, "config", "annex.private", "true")
    assert "private" in (AnnexRepo.open(annex_repo).unsupported_reason() or "")
    git(annex_repo, "config", "--unset", "annex.private")
    (annex_repo / "x").write_bytes(b"x\n")
    annex(annex_repo, "add", "-q", "x")
    git(annex_repo, "commit", "-q", "-m", "x")
    annex(annex_repo, "forget", "--force", "-q")
    assert "transitions.log" in (AnnexRepo.open(annex_repo).unsupported_reason() or "")


@pytest.mark.interop
def test_adjusted_branch_refused(annex_repo: Path) -> None:
    (annex_repo / "x").write_bytes(b"x\n")
    annex(annex_repo, "add", "-q", "x")
    git(annex_repo, "commit", "-q", "-m", "x")
    annex(annex_repo, "adjust", "--unlock")
    assert "adjusted" in (AnnexRepo.open(annex_repo).unsupported_reason() or "")
