"""Two devices merging each other's merges end at one commit (issue 13): when both
tips have one tree and neither contains the other, ``merge_ref`` makes the agreed
merge commit (``gitops.make_agreed_merge``), the same on both sides, so the next
exchange has nothing to merge -- no endless chain of new merge commits.  Real git
repositories, plain ``git fetch`` between them."""

from __future__ import annotations

from pathlib import Path

from core.ops.sync import SyncResult, merge_ref
from core.repo.repository import AnnexRepo
from tests.conftest import git


def _merge(path: Path, ref: str) -> bool:
    with AnnexRepo.open(path) as repo:
        return merge_ref(repo, ref.encode(), SyncResult())


def _exchange(pa: Path, pb: Path) -> tuple[bool, bool]:
    """Both fetch the other's branch, then both merge it (the pushes cross)."""
    git(pa, "fetch", "-q", str(pb), "+main:refs/remotes/b/main")
    git(pb, "fetch", "-q", str(pa), "+main:refs/remotes/a/main")
    return _merge(pa, "refs/remotes/b/main"), _merge(pb, "refs/remotes/a/main")


def _head(path: Path) -> str:
    return git(path, "rev-parse", "HEAD").strip()


def _commit(path: Path, name: str) -> None:
    (path / name).write_text(name + "\n")
    git(path, "add", name)
    git(path, "commit", "-q", "-m", name)


def test_merges_of_merges_end_at_one_commit(tmp_path: Path) -> None:
    pa, pb = tmp_path / "a", tmp_path / "b"
    pa.mkdir()
    git(pa, "init", "-q", "-b", "main")
    AnnexRepo.init(pa, "a").close()
    _commit(pa, "README")
    git(tmp_path, "clone", "-q", str(pa), "b")
    AnnexRepo.init(pb, "b").close()
    for p in (pa, pb):
        git(p, "config", "user.name", p.name)  # two people: their merges differ
        git(p, "config", "user.email", f"{p.name}@example.org")
    _commit(pa, "from-a")
    _commit(pb, "from-b")
    assert _exchange(pa, pb) == (True, True)  # each merges the other's work: two merges
    assert _head(pa) != _head(pb)
    assert git(pa, "rev-parse", "HEAD^{tree}") == git(pb, "rev-parse", "HEAD^{tree}")
    assert _exchange(pa, pb) == (True, True)  # one tree, neither contains the other
    assert _head(pa) == _head(pb), git(pa, "log", "--graph", "--oneline", "--all")
    merges = git(pa, "rev-list", "--merges", "--count", "HEAD")
    assert _exchange(pa, pb) == (False, False)  # nothing left to merge
    assert git(pa, "rev-list", "--merges", "--count", "HEAD") == merges == "3\n"
    assert git(pa, "status", "--porcelain") == git(pb, "status", "--porcelain") == ""
