"""Unit tests for core.repo.branch over dulwich repositories (real git only to check)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo
from hypothesis import given
from hypothesis import strategies as st

from core.errors import UnsupportedRepository
from core.repo import branch as branch_module
from core.repo.branch import (
    BRANCH,
    EMPTY_TREE,
    AnnexBranch,
    complete_lines,
    journal_name,
    journal_path,
)
from tests.conftest import git

LOC = "e7d/d01/SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.txt.log"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    path = tmp_path / "r"
    path.mkdir()
    git(path, "init", "-q")
    return Repo(str(path))


def make(repo: Repo) -> AnnexBranch:
    return AnnexBranch(repo, Path(repo.controldir()))


def show(repo: Repo, path: str, ref: str = "git-annex") -> str:
    return git(repo.path, "show", f"{ref}:{path}")


# --- journal names ------------------------------------------------------------


def test_journal_name_examples() -> None:
    assert journal_name("bb6/8a9/SHA256E-s24--deb5.jpeg.log") == "bb6_8a9_SHA256E-s24--deb5.jpeg.log"
    assert journal_name("trust.log") == "trust.log"
    assert journal_name("a_b/c") == "a__b_c"
    assert journal_path("a__b_c") == "a_b/c"


@given(
    st.lists(st.from_regex(r"[a.][ab_.]{0,6}", fullmatch=True), min_size=1, max_size=4).map("/".join)
)
def test_journal_name_round_trip(path: str) -> None:
    assert journal_path(journal_name(path)) == path


def test_complete_lines() -> None:
    assert complete_lines(b"a\nb") == b"a\n"
    assert complete_lines(b"partial") == b""
    assert complete_lines(b"a\n") == b"a\n"


# --- create, change, read, commit ---------------------------------------------


def test_create_root_commit(repo: Repo) -> None:
    b = make(repo)
    tip = b.create()
    c = repo[tip]
    assert isinstance(c, Commit)
    assert c.tree == EMPTY_TREE and c.parents == [] and c.message == b"branch created\n"
    assert c.author == b"Test User <test@example.com>"
    assert b.create() == tip
    git(repo.path, "fsck", "--strict")


def test_create_from_origin(repo: Repo) -> None:
    b = make(repo)
    first = b.create()
    repo.refs[b"refs/remotes/origin/git-annex"] = first
    del repo.refs[BRANCH]
    assert make(repo).create() == first


def test_change_goes_to_journal_then_commit(repo: Repo) -> None:
    b = make(repo)
    b.create()
    b.change(LOC, lambda old: (old or b"") + b"1s 1 u1\n")
    jfile = Path(repo.controldir()) / "annex" / "journal" / journal_name(LOC)
    assert jfile.read_bytes() == b"1s 1 u1\n"
    assert b.read(LOC) == b"1s 1 u1\n"
    new = b.commit()
    assert new is not None and b.tip() == new
    assert not jfile.exists()
    assert show(repo, LOC) == "1s 1 u1\n"
    assert b.read(LOC) == b"1s 1 u1\n"
    assert b.commit() is None  # nothing to do
    git(repo.path, "fsck", "--strict")


def test_fn_returning_none_writes_nothing(repo: Repo) -> None:
    b = make(repo)
    b.change("trust.log", lambda old: None)
    assert not (Path(repo.controldir()) / "annex" / "journal" / "trust.log").exists()


def test_read_prefers_journal_and_drops_incomplete_line(repo: Repo) -> None:
    b = make(repo)
    b.change("uuid.log", lambda old: b"u1 x timestamp=1s\n")
    b.commit()
    journal = Path(repo.controldir()) / "annex" / "journal"
    (journal / "uuid.log").write_bytes(b"u2 y timestamp=2s\nu3 half")
    assert b.read("uuid.log") == b"u2 y timestamp=2s\n"
    assert b.read("missing.log") is None


def test_transaction_with_commit_writes_no_journal(repo: Repo) -> None:
    b = make(repo)
    b.create()
    b.change("trust.log", lambda old: b"u1 1 timestamp=1s\n")  # pending journal file
    with b.transaction(commit="update") as tx:
        tx.change("a/b/c.log", lambda old: b"x\n")
        tx.change("a/b/c.log", lambda old: (old or b"") + b"y\n")
        tx.change("a/d.log", lambda old: b"z\n")
        assert b.read("a/b/c.log") == b"x\ny\n"  # reads inside see pending changes
        assert not list((Path(repo.controldir()) / "annex" / "journal").glob("a_*"))
    assert show(repo, "a/b/c.log") == "x\ny\n"
    assert show(repo, "a/d.log") == "z\n"
    assert show(repo, "trust.log") == "u1 1 timestamp=1s\n"  # journal went in too
    assert list((Path(repo.controldir()) / "annex" / "journal").iterdir()) == []
    c = repo[b.tip()]
    assert isinstance(c, Commit) and len(c.parents) == 1


def test_nested_transactions_join(repo: Repo) -> None:
    b = make(repo)
    with b.transaction(commit="update"):
        b.change("x.log", lambda old: b"1\n")
        with b.journal():
            b.change("y.log", lambda old: b"2\n")
    assert show(repo, "x.log") == "1\n" and show(repo, "y.log") == "2\n"


def test_exception_still_journals_changes(repo: Repo) -> None:
    b = make(repo)
    with pytest.raises(RuntimeError), b.transaction(commit="update") as tx:
        tx.change("x.log", lambda old: b"1\n")
        raise RuntimeError("boom")
    assert b.tip() is None
    assert b.read("x.log") == b"1\n"


def test_lock_is_fcntl_and_excludes_other_processes(repo: Repo) -> None:
    b = make(repo)
    lck = Path(repo.controldir()) / "annex" / "journal.lck"
    probe = (
        "import fcntl, os, sys\n"
        f"fd = os.open({str(lck)!r}, os.O_RDWR)\n"
        "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(3)\n"
    )
    with b.transaction():
        held = subprocess.run([sys.executable, "-c", probe])
    free = subprocess.run([sys.executable, "-c", probe])
    assert (held.returncode, free.returncode) == (3, 0)


def test_commit_race_is_merged_not_lost(repo: Repo) -> None:
    b = make(repo)
    b.change("a.log", lambda old: b"base\n")
    b.commit()
    base = b.tip()
    assert base is not None
    with b.transaction(commit="update") as tx:
        tx.change("a.log", lambda old: (old or b"") + b"ours\n")
        # someone else moves the branch meanwhile (e.g. a push into it)
        blob = Blob.from_string(b"base\ntheirs\n")
        tree = Tree()
        tree.add(b"a.log", 0o100644, blob.id)
        other = Commit()
        other.tree, other.parents, other.message = tree.id, [base], b"other\n"
        other.author = other.committer = b"X <x@y>"
        other.author_time = other.commit_time = 0
        other.author_timezone = other.commit_timezone = 0
        for o in (blob, tree, other):
            repo.object_store.add_object(o)
        repo.refs[BRANCH] = other.id
    assert show(repo, "a.log") == "base\nours\ntheirs\n"
    git(repo.path, "fsck", "--strict")


def test_many_changes_are_fast(repo: Repo) -> None:
    b = make(repo)
    b.create()
    start = time.monotonic()
    with b.transaction(commit="update") as tx:
        for i in range(10_000):
            h = f"{i:06x}"
            tx.change(f"{h[:3]}/{h[3:]}/K{i}.log", lambda old: b"1s 1 u\n")
    elapsed = time.monotonic() - start
    assert show(repo, "000/000/K0.log") == "1s 1 u\n"
    assert elapsed < 10, elapsed
    git(repo.path, "fsck", "--strict")


def test_blob_reads_follow_the_branch_and_stay_bounded(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blobs are cached by sha (a get reads a key's log twice): a read after a
    commit -- ours or another writer's moving the ref -- sees the new blob, and
    the cache never holds more than its byte budget."""
    monkeypatch.setattr(branch_module, "BLOB_CACHE_BYTES", 100)
    b = make(repo)
    b.create()
    other = make(Repo(repo.path))  # another process's view of the same branch
    for i in range(16):  # the log outgrows the budget: then it is read from git each time
        writer = b if i % 2 else other
        writer.change(LOC, lambda old, i=i: (old or b"") + f"{i}s 1 u{i}\n".encode())
        writer.commit()
        got = b.read(LOC)
        assert got is not None and got.splitlines()[-1] == f"{i}s 1 u{i}".encode()
        assert b._blob_bytes <= 100
    assert show(repo, LOC).splitlines()[-1] == "15s 1 u15"


# --- merging ------------------------------------------------------------------


def _side_commit(repo: Repo, b: AnnexBranch, ref: bytes, files: dict[str, bytes]) -> bytes:
    """Make ``ref`` = tip + files, as another clone would."""
    saved = b.tip()
    with b.transaction(commit="update") as tx:
        for path, data in files.items():
            tx.change(path, lambda old, d=data: d)  # type: ignore[misc]
    new = b.tip()
    assert new is not None and saved is not None
    repo.refs[ref] = new
    repo.refs[BRANCH] = saved
    return new


def test_merge_fast_forward_and_merge_commit(repo: Repo) -> None:
    b = make(repo)
    b.change("uuid.log", lambda old: b"u1 one timestamp=1s\n")
    b.commit()
    theirs = _side_commit(repo, b, b"refs/remotes/origin/git-annex", {"uuid.log": b"u1 one timestamp=1s\nu2 two timestamp=2s\n"})
    assert b.merge_refs() == [b"refs/remotes/origin/git-annex"]
    assert b.tip() == theirs  # fast-forward
    assert b.merge_refs() == []
    other = _side_commit(repo, b, b"refs/heads/synced/git-annex", {"uuid.log": b"u3 three timestamp=3s\n", LOC: b"1s 1 u3\n"})
    b.change("uuid.log", lambda old: (old or b"") + b"u4 four timestamp=4s\n")
    assert b.merge_refs() == [b"refs/heads/synced/git-annex"]
    c = repo[b.tip()]
    assert isinstance(c, Commit)
    assert c.message == b"merging synced/git-annex into git-annex\n"
    assert c.parents[1] == other
    assert show(repo, "uuid.log").splitlines() == [
        "u1 one timestamp=1s", "u2 two timestamp=2s", "u3 three timestamp=3s", "u4 four timestamp=4s"
    ]
    assert show(repo, LOC) == "1s 1 u3\n"
    assert b"synced/git-annex" in (Path(repo.controldir()) / "annex" / "mergedrefs").read_bytes()
    git(repo.path, "fsck", "--strict")


def test_merge_refuses_different_transitions(repo: Repo) -> None:
    b = make(repo)
    b.create()
    _side_commit(repo, b, b"refs/remotes/x/git-annex", {"transitions.log": b"ForgetGitHistory 1s\n"})
    with pytest.raises(UnsupportedRepository, match="transitions.log"):
        b.merge_refs()


def test_unsupported_reasons(repo: Repo) -> None:
    b = make(repo)
    assert b.unsupported_reason() is None
    b.change("difference.log", lambda old: b"u fromList [ObjectHashLower] timestamp=1s\n")
    with pytest.raises(UnsupportedRepository, match="difference.log"):
        b.check_writable()
    repo2 = Repo.init(str(Path(repo.path).parent / "r2"), mkdir=True)
    git(repo2.path, "config", "remote.foo.annex-private", "true")
    assert "annex-private" in (make(Repo(repo2.path)).unsupported_reason() or "")
    git(repo2.path, "config", "annex.private", "true")
    assert "annex.private" in (make(Repo(repo2.path)).unsupported_reason() or "")
