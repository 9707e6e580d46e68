"""core.gitlock on real files and real git: the index under index.lock, waiting,
stale locks (left by a dead process) told apart from held ones."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.file import FileLocked
from dulwich.index import index_entry_from_stat
from dulwich.objects import Blob
from dulwich.repo import Repo

from core import gitlock, gitops
from core.errors import GitLockHeld
from core.repo.branch import AnnexBranch
from tests.conftest import git
from tests.unit.test_branch import LOC
from tests.unit.test_branch import repo as repo  # the fixture: a fresh git repository


@pytest.fixture
def policy() -> Iterator[None]:
    """Short waits, stale recovery after 0.2 s (the daemon's rule, sped up)."""
    before = gitlock.current_policy()
    gitlock.set_policy(gitlock.LockPolicy(wait=0.6, stale_after=0.2))
    try:
        yield
    finally:
        gitlock.set_policy(before)


def _stage(repo: Repo, name: str) -> None:
    path = Path(repo.path) / name
    path.write_text(name)
    blob = Blob.from_string(name.encode())
    repo.object_store.add_object(blob)
    with gitlock.locked_index(repo) as index:
        index[name.encode()] = index_entry_from_stat(path.lstat(), blob.id, 0o100644)
        index.write()


def test_locked_index_reads_under_the_lock_and_git_agrees(repo: Repo) -> None:
    _stage(repo, "ours.txt")
    (Path(repo.path) / "theirs.txt").write_text("theirs")
    git(repo.path, "add", "theirs.txt")  # staged by git between our two writes
    _stage(repo, "more.txt")
    assert git(repo.path, "ls-files").split() == ["more.txt", "ours.txt", "theirs.txt"]
    assert not (Path(repo.path) / ".git" / "index.lock").exists()
    git(repo.path, "commit", "-q", "-m", "x")  # git reads what we wrote (no stale TREE)
    assert git(repo.path, "ls-tree", "--name-only", "HEAD").split() == [
        "more.txt", "ours.txt", "theirs.txt"]


def test_an_error_inside_leaves_the_index_alone(repo: Repo) -> None:
    _stage(repo, "a.txt")
    before = (Path(repo.path) / ".git" / "index").read_bytes()
    with pytest.raises(RuntimeError), gitlock.locked_index(repo) as index:
        del index[b"a.txt"]
        index.write()
        raise RuntimeError("boom")
    assert (Path(repo.path) / ".git" / "index").read_bytes() == before
    assert not (Path(repo.path) / ".git" / "index.lock").exists()


def _hold(lock: Path, seconds: float) -> subprocess.Popen[str]:
    """A live process holding ``lock`` open for a while, then releasing it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import os,sys,time; fd=os.open(sys.argv[1], "
         "os.O_CREAT|os.O_EXCL|os.O_RDWR); print('held', flush=True); "
         "time.sleep(float(sys.argv[2])); os.unlink(sys.argv[1])", str(lock), str(seconds)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_we_wait_for_a_lock_another_process_holds(repo: Repo, policy: None) -> None:
    holder = _hold(Path(repo.path) / ".git" / "index.lock", 0.3)
    try:
        _stage(repo, "waited.txt")
    finally:
        holder.wait(10)
    assert "waited.txt" in git(repo.path, "ls-files")


def test_git_commands_run_again_once_the_lock_is_free(repo: Repo, policy: None) -> None:
    """git itself gives up at once on index.lock; run_git waits and runs it again."""
    (Path(repo.path) / "f.txt").write_text("f")
    holder = _hold(Path(repo.path) / ".git" / "index.lock", 0.3)
    try:
        gitops.run_git(Path(repo.path), ["add", "f.txt"])
    finally:
        holder.wait(10)
    assert "f.txt" in git(repo.path, "ls-files")


def test_a_lock_held_open_is_never_stale(repo: Repo, policy: None) -> None:
    lock = Path(repo.path) / ".git" / "index.lock"
    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_RDWR)
    try:
        assert gitlock.is_open_anywhere(lock)
        with pytest.raises(GitLockHeld) as e:
            _stage(repo, "blocked.txt")
        assert str(lock) in str(e.value) and "if none is, remove" in str(e.value)
        assert lock.exists()
    finally:
        os.close(fd)
        lock.unlink()


def test_a_dead_process_lock_is_recovered_by_the_daemon_rule(repo: Repo, policy: None) -> None:
    lock = Path(repo.path) / ".git" / "index.lock"
    lock.write_bytes(b"DIRC partial")  # nobody has it open, it does not change
    assert not gitlock.is_open_anywhere(lock)
    _stage(repo, "after.txt")
    assert not lock.exists()
    assert "after.txt" in git(repo.path, "ls-files")


def test_one_shot_commands_never_remove_a_lock(repo: Repo) -> None:
    before = gitlock.current_policy()
    gitlock.set_policy(gitlock.LockPolicy(wait=0.3, stale_after=None))
    lock = Path(repo.path) / ".git" / "index.lock"
    lock.write_bytes(b"")
    try:
        time.sleep(0.1)
        with pytest.raises(GitLockHeld):
            _stage(repo, "x.txt")
        assert lock.exists()
    finally:
        gitlock.set_policy(before)


def test_git_lock_message_is_parsed() -> None:
    err = ("fatal: Unable to create '/r/.git/index.lock': File exists.\n\n"
           "Another git process seems to be running in this repository")
    assert gitlock.lock_in_git_message(err) == Path("/r/.git/index.lock")
    assert gitlock.lock_in_git_message("fatal: not a git repository") is None


def test_branch_commit_failing_on_its_ref_lock_keeps_the_lines(repo: Repo) -> None:
    """A method-B transaction whose commit cannot move the ref: the lines go to the
    journal (as git-annex keeps its journal) and the next commit takes them."""
    before = gitlock.current_policy()
    gitlock.set_policy(gitlock.LockPolicy(wait=0.2))
    branch = AnnexBranch(repo, Path(repo.controldir()))
    branch.create()
    lock = Path(repo.controldir()) / "refs" / "heads" / "git-annex.lock"
    lock.write_bytes(b"")
    try:
        with pytest.raises(GitLockHeld), branch.transaction(commit="update") as tx:
            tx.change(LOC, lambda old: b"1 1 uuid-a\n")
        assert branch.journal_files() == {LOC: b"1 1 uuid-a\n"}
        assert branch.commit_or_keep(wait=0.1) is False
    finally:
        gitlock.set_policy(before)
        lock.unlink()
    assert branch.commit_or_keep() is True
    assert branch.journal_files() == {}
    assert git(repo.path, "show", f"git-annex:{LOC}") == "1 1 uuid-a\n"


def test_sweep_recovers_stale_locks_and_leaves_fcntl_lock_files(repo: Repo, policy: None) -> None:
    gitdir = Path(repo.controldir())
    (gitdir / "annex").mkdir()
    stale = [gitdir / "annex" / "index.lock", gitdir / "refs" / "heads" / "main.lock",
             gitdir / "packed-refs.lock"]
    for lock in stale:
        lock.write_bytes(b"")
    journal_lck = gitdir / "annex" / "journal.lck"  # fcntl: present all the time
    journal_lck.write_bytes(b"")
    held = gitdir / "HEAD.lock"
    fd = os.open(held, os.O_CREAT | os.O_EXCL | os.O_RDWR)
    try:
        assert sorted(gitlock.sweep(gitdir)) == sorted([*stale, held])  # first look
        time.sleep(0.3)
        assert gitlock.sweep(gitdir) == [held]  # unchanged for the stale period: gone
        assert not any(lock.exists() for lock in stale)
        assert journal_lck.exists() and held.exists()
    finally:
        os.close(fd)
        held.unlink()


def test_nested_use_in_one_thread_joins_the_outer_hold(repo: Repo, policy: None) -> None:
    """sync restages under index.lock and re-adds through Adder meanwhile: no self-wait."""
    with gitlock.locked_index(repo) as outer:
        gitlock.wait_until_free(Path(repo.index_path()))  # returns at once
        with gitlock.locked_index(repo) as inner:
            assert inner is outer
    assert not (Path(repo.path) / ".git" / "index.lock").exists()


def test_a_loose_object_lock_left_by_a_kill_is_recovered(repo: Repo, policy: None) -> None:
    """dulwich writes loose objects through ``objects/xx/<sha>.lock`` too (the kill test met one)."""
    blob = Blob.from_string(b"content\n")
    sha = blob.id.decode()
    lock = Path(repo.controldir()) / "objects" / sha[:2] / f"{sha[2:]}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_bytes(b"x")
    gitlock.add_object(repo, blob)
    assert not lock.exists()
    assert git(repo.path, "cat-file", "-p", sha) == "content\n"
    explained = gitlock.explain(FileLocked(str(lock)[:-5], str(lock)))
    assert isinstance(explained, GitLockHeld) and str(lock) in str(explained)
