"""git's lock files against real git and git-annex (issue 8, ``core.gitlock``).

* ``annexsync add`` and ``git annex add`` racing on one repository: no file
  either of them staged is lost (the index is read-modify-written under
  ``index.lock``);
* ``annexsync sync`` and ``git annex sync`` racing: no crash, nothing lost;
* a stale ``index.lock`` stops a one-shot command with words saying which
  file to remove; a stale ``refs/heads/git-annex.lock`` does not fail an
  upload whose content was stored, and the journal keeps the log line.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import annex, git, run

pytestmark = pytest.mark.interop

ROUNDS = 8  # sync rounds
ADD_ROUNDS = 24  # the code before the fix lost files in 2-5 of 24 rounds, every run
FILES = 4
STAGGER = 0.025  # git-annex starts (r % 8) * STAGGER s after us: the rounds sweep our window


# git's words when index.lock was held; git-annex 10.20261026 relays them and still
# says "ok" and exits 0, leaving the file an unstaged symlink (its own behaviour).
LOCKED = "index.lock': File exists"


def _start(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _finish(p: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = p.communicate(timeout=60)
    return p.returncode, out + err


def _staged(repo: Path) -> set[str]:
    return set(git(repo, "ls-files").splitlines())


def _write(repo: Path, names: list[str], size: int = 1) -> None:
    for n in names:
        (repo / n).write_bytes(os.urandom(16) + n.encode() * size)


@pytest.mark.slow  # a stress/soak run: tests/run runs it in the slow step
def test_add_racing_git_annex_add_loses_no_staged_file(annex_repo: Path) -> None:
    """Rounds of both adds at once; every file an add reported is staged afterwards."""
    repo = annex_repo
    expected: set[str] = set()
    for rnd in range(ADD_ROUNDS):
        ours = [f"ours-{rnd}-{i}.bin" for i in range(FILES)]
        theirs = [f"theirs-{rnd}-{i}.bin" for i in range(FILES)]
        _write(repo, ours, size=100_000)  # ~1.5 MB each: hashing keeps our add busy
        _write(repo, theirs)
        a = _start(["annexsync", "add", *ours], repo)
        time.sleep((rnd % 8) * STAGGER)
        g = _start(["git", "annex", "add", *theirs], repo)
        (a_rc, a_out), (g_rc, g_out) = _finish(a), _finish(g)
        assert a_rc == 0, a_out
        expected |= set(ours)
        if g_rc == 0 and LOCKED not in g_out:
            expected |= set(theirs)
        else:  # git-annex does not wait for index.lock; git's message says it did not stage
            assert LOCKED in g_out, g_out
        missing = expected - _staged(repo)
        assert not missing, f"round {rnd}: staged files lost: {sorted(missing)}"
    git(repo, "commit", "-q", "-m", "all")
    annex(repo, "fsck", "--fast", "--quiet")
    assert git(repo, "status", "--porcelain").strip() == "" or _only_untracked(repo)


def _only_untracked(repo: Path) -> bool:
    return all(line.startswith("??") for line in git(repo, "status", "--porcelain").splitlines())


@pytest.mark.slow  # a stress/soak run: tests/run runs it in the slow step
def test_sync_racing_git_annex_sync_neither_crashes_nor_loses(annex_repo: Path) -> None:
    """Both commit the work tree at once; every file ends up committed, fsck clean.

    The code before the fix crashed on index.lock (``FileLocked``) in 7-8 of 8 rounds."""
    repo = annex_repo
    git(repo, "config", "annex.addunlocked", "true")
    edited = [f"edited-{i}.txt" for i in range(12)]  # both restage these: a wide window
    _write(repo, edited)
    annex(repo, "add", "--quiet", *edited)
    git(repo, "commit", "-q", "-m", "start")
    names: list[str] = []
    for rnd in range(ROUNDS):
        ours, theirs = [f"o-{rnd}-{i}.txt" for i in range(FILES)], [f"t-{rnd}-{i}.txt" for i in range(FILES)]
        _write(repo, ours + theirs, size=2000)
        run(["annexsync", "add", *ours], repo)
        annex(repo, "add", "--quiet", *theirs)
        _write(repo, edited, size=200)
        names += ours + theirs
        a = _start(["annexsync", "sync", "-m", f"ours {rnd}"], repo)
        g = _start(["git", "annex", "sync", "--quiet", "--no-content"], repo)
        (a_rc, a_out), (g_rc, g_out) = _finish(a), _finish(g)
        assert a_rc == 0, a_out
        assert "Traceback" not in a_out and "FileLocked" not in a_out, a_out
        if g_rc != 0:
            assert LOCKED in g_out, g_out
    run(["annexsync", "sync"], repo)
    annex(repo, "sync", "--quiet", "--no-content")
    committed = set(git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines())
    assert set(names) <= committed, sorted(set(names) - committed)
    assert not (repo / ".git" / "index.lock").exists()
    git(repo, "fsck", "--no-progress")
    annex(repo, "fsck", "--quiet")


def test_stale_index_lock_tells_the_person_what_to_remove(annex_repo: Path) -> None:
    repo = annex_repo
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"")  # left by a git killed mid-commit
    (repo / "new.txt").write_text("new\n")
    env = {**os.environ, "ANNEXSYNC_LOCK_WAIT": "0.5"}
    p = run(["annexsync", "add", "new.txt"], repo, check=False, env=env)
    assert p.returncode == 1
    text = p.stdout + p.stderr
    assert f"another git process seems to be running in {repo}" in text, text
    assert f"if none is, remove {lock}" in text, text
    assert "Traceback" not in text
    assert lock.exists()  # a one-shot command never removes it itself
    lock.unlink()
    run(["annexsync", "add", "new.txt"], repo, env=env)
    assert "new.txt" in _staged(repo)


def test_stale_git_annex_ref_lock_does_not_fail_an_upload(tmp_path: Path) -> None:
    """Content stored under a held ``refs/heads/git-annex.lock``: the upload
    succeeds, the journal keeps the location line, a later commit takes it."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    run(["annexsync", "init", "a"], a)
    (a / "photo.jpg").write_bytes(os.urandom(50_000))
    run(["annexsync", "add", "photo.jpg"], a)
    git(a, "commit", "-q", "-m", "photo")
    git(tmp_path, "clone", "-q", str(a), str(b))
    annex(b, "init", "-q", "b")
    b_uuid = git(b, "config", "annex.uuid").strip()
    lock = b / ".git" / "refs" / "heads" / "git-annex.lock"
    lock.write_bytes(b"")  # a git-annex killed while moving its branch
    git(a, "remote", "add", "b", str(b))
    env = {**os.environ, "ANNEXSYNC_LOCK_WAIT": "0.5"}
    p = run(["annexsync", "copy", "--to", "b", "photo.jpg"], a, check=False, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ok" in p.stdout and "failed" not in p.stdout
    assert os.listdir(b / ".git" / "annex" / "journal"), "the journal keeps the line"
    # (real git-annex's whereis in b would fail here: it commits its journal first)
    assert b_uuid in run(["annexsync", "whereis", "--json", "photo.jpg"], a).stdout
    lock.unlink()  # the person (or the daemon) recovered the lock
    run(["annexsync", "sync"], b)
    assert b_uuid in git(b, "grep", "-h", b_uuid, "git-annex", "--", "*.log")
    assert not os.listdir(b / ".git" / "annex" / "journal")


def test_http_upload_under_a_stale_branch_lock_succeeds(tmp_path: Path) -> None:
    """The same over P2P HTTP: our server stores, answers success, keeps the journal."""
    from tests.integration.test_p2phttp_interop import _client_repo
    from tests.integration.test_p2phttp_support import make_server_repo, our_p2phttp

    srv = tmp_path / "srv"
    uuid = make_server_repo(srv, {})
    lock = srv / ".git" / "refs" / "heads" / "git-annex.lock"
    lock.write_bytes(b"")
    with our_p2phttp(srv, "--wideopen", "-J2") as proc:
        c = _client_repo(tmp_path, "client", uuid, proc.base)
        (c / "f").write_bytes(b"stored anyway\n")
        annex(c, "add", "-q", "f")
        git(c, "commit", "-q", "-m", "f")
        out = annex(c, "copy", "--to", "srv", "f")
        assert "ok" in out and "failed" not in out
        key = annex(c, "lookupkey", "f").strip()
        assert annex(srv, "contentlocation", key).strip()
    assert os.listdir(srv / ".git" / "annex" / "journal")
    lock.unlink()
    assert uuid in annex(srv, "whereis", "--key", key)
