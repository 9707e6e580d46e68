"""``annexsync daemon`` (a real subprocess) killed with SIGKILL, and stale git locks.

A crash can leave ``index.lock`` or a ref lock behind; the next daemon must
recover them (``core.gitlock``, stale period shortened by the environment)
and carry on alone: every file committed, ``git fsck`` and ``git annex
fsck`` clean.  A job failing meanwhile never ends the repository's worker.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import annex, git
from tests.integration.test_daemon_cli import ANNEXSYNC, status_json, wait_for

KILLS = 20
FAST_LOCKS = {"ANNEXSYNC_STALE_LOCK_AFTER": "0.3", "ANNEXSYNC_LOCK_WAIT": "1"}


@contextmanager
def daemon(cfg: Path, repo: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with (cfg.parent / "daemon-output.txt").open("a") as out:
        proc = subprocess.Popen([*ANNEXSYNC, "--config-dir", str(cfg), "daemon", str(repo)],
                                stdout=out, stderr=out, env=env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def _committed(repo: Path) -> set[str]:
    if not repo.is_dir():
        return set()
    p = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD"], cwd=repo,
                       capture_output=True, text=True, timeout=30)
    return set(p.stdout.splitlines()) if p.returncode == 0 else set()


def _synced(cfg: Path, repo: Path, names: set[str]) -> bool:
    if not names <= _committed(repo):
        return False
    data = status_json(cfg)
    return bool(data["running"]) and data["health"] == "synced"


@pytest.mark.slow  # a stress/soak run: tests/run runs it in the slow step
@pytest.mark.interop
def test_daemon_killed_twenty_times_resumes_alone(tmp_path: Path) -> None:
    cfg, repo = tmp_path / "cfg", tmp_path / "Sync"
    env = {**os.environ, **FAST_LOCKS}
    rng = random.Random(8)
    names: set[str] = set()
    for n in range(KILLS):
        batch = {f"f-{n}-{i}.txt" for i in range(3)}
        if repo.exists():
            for name in batch:
                (repo / name).write_text(f"{name}\n" * 50)
            names |= batch
        with daemon(cfg, repo, env) as proc:
            if not repo.exists():  # a slow start (a loaded machine) must not skip the kills
                wait_for(lambda: proc.poll() is not None or (repo / ".git").exists(),
                         "the daemon creating its repository", timeout=30)
            time.sleep(rng.uniform(0.2, 1.2))  # startup, scan, commit, push: anywhere
            proc.send_signal(signal.SIGKILL)
    with daemon(cfg, repo, env) as proc:
        try:
            wait_for(lambda: proc.poll() is not None or _synced(cfg, repo, names),
                     "every file committed after the kills", timeout=40)
        except AssertionError as e:
            left = sorted(names - _committed(repo))
            output = (tmp_path / "daemon-output.txt").read_text()[-3000:]
            raise AssertionError(f"{e}: not committed {left}; status {status_json(cfg)}; "
                                 f"daemon output: {output}") from None
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert names <= _committed(repo)
    assert not (repo / ".git" / "index.lock").exists()
    git(repo, "fsck", "--no-progress")
    annex(repo, "fsck", "--quiet")


@pytest.mark.interop
def test_daemon_recovers_a_stale_index_lock(tmp_path: Path) -> None:
    """index.lock left by a killed git: the daemon waits the stale period, removes it,
    commits; meanwhile status names the problem instead of saying synced."""
    cfg, repo = tmp_path / "cfg", tmp_path / "Sync"
    repo.mkdir()
    git(repo, "init", "-q")
    annex(repo, "init", "-q")
    (repo / "before.txt").write_text("before\n")
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"DIRC")  # a git killed mid-write
    env = {**os.environ, "ANNEXSYNC_STALE_LOCK_AFTER": "3", "ANNEXSYNC_LOCK_WAIT": "0.5"}
    with daemon(cfg, repo, env) as proc:
        wait_for(lambda: proc.poll() is not None or any(
            r["error"] and "index.lock" in r["error"] for r in status_json(cfg)["repos"]),
            "the held lock shown in status", timeout=20)
        data = status_json(cfg)
        assert data["health"] == "error"
        assert "if none is, remove" in data["repos"][0]["error"]
        assert any("index.lock" in a["text"] for a in data["alerts"]), data["alerts"]
        wait_for(lambda: proc.poll() is not None or _synced(cfg, repo, {"before.txt"}),
                 "the stale lock recovered and the file committed", timeout=30)
        assert proc.poll() is None
    assert not lock.exists()


def test_daemon_finishes_a_creation_a_crash_cut_short(tmp_path: Path) -> None:
    """Killed right after ``git init`` of a new folder: the next start annex-inits it
    as it would have (files unlocked), instead of refusing a half-made repository."""
    cfg, repo = tmp_path / "cfg", tmp_path / "Sync"
    repo.mkdir()
    git(repo, "init", "-q")  # what the crash left
    (repo / "a.txt").write_text("a\n")
    with daemon(cfg, repo, {**os.environ, **FAST_LOCKS}) as proc:
        wait_for(lambda: proc.poll() is not None or _synced(cfg, repo, {"a.txt"}),
                 "the half-made repository finished and synced", timeout=30)
        assert proc.poll() is None
    assert git(repo, "config", "annex.addunlocked").strip() == "true"
    assert not (repo / ".git" / "annexsync-creating").exists()


@pytest.mark.interop
def test_daemon_recovers_a_stale_branch_lock_and_commits_the_journal(tmp_path: Path) -> None:
    """refs/heads/git-annex.lock left by a dead git-annex: the journal keeps what
    was written meanwhile; the daemon recovers the lock and commits it."""
    cfg, repo = tmp_path / "cfg", tmp_path / "Sync"
    repo.mkdir()
    git(repo, "init", "-q")
    annex(repo, "init", "-q")
    git(repo, "-c", "annex.alwayscommit=false", "annex", "describe", "here", "kept-in-journal")
    assert os.listdir(repo / ".git" / "annex" / "journal")
    lock = repo / ".git" / "refs" / "heads" / "git-annex.lock"
    lock.write_bytes(b"")
    (repo / "new.txt").write_text("new\n")
    with daemon(cfg, repo, {**os.environ, **FAST_LOCKS}) as proc:
        wait_for(lambda: proc.poll() is not None or _synced(cfg, repo, {"new.txt"}),
                 "the lock recovered, the file committed", timeout=30)
        assert proc.poll() is None
    assert not lock.exists()
    assert not os.listdir(repo / ".git" / "annex" / "journal")
    assert "kept-in-journal" in git(repo, "show", "git-annex:uuid.log")
    annex(repo, "fsck", "--quiet")
