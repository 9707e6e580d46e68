"""Commits and merges never fail for lack of a git identity (issue 8).

The real situation, reproduced: a HOME with no git config at all, no
``EMAIL``/``GIT_*`` variables, and a host name without a domain (each command
runs in a private UTS namespace whose host name is ``nodomain``), so git's
own auto-detection fails ("unable to auto-detect email address").  The peer
is real git-annex (which fails to ``init`` there without help, so its own
repository gets a local identity); our daemon's commit and merge jobs must
cope with no help at all, as git-annex's ``ensureCommit`` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.repo.identity import login_name
from tests.namespaces import skip_reason, unshared

pytestmark = pytest.mark.interop

NO_IDENTITY_VARS = ("EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                    "GIT_COMMITTER_EMAIL")
COMMIT = "import sys; from core.daemon import jobs; jobs.commit_changes(sys.argv[1], sys.argv[2:], None)"
RECEIVE = "import sys; from core.daemon import jobs; print(jobs.receive(sys.argv[1]))"


@pytest.fixture
def nodomain(tmp_path: Path) -> object:
    """Run commands as a user git cannot identify; returns ``run(cmd, cwd)``."""
    reason = skip_reason() or (None if shutil.which("hostname") else "no hostname command")
    if reason:
        pytest.skip(reason)
    home = tmp_path / "empty-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in NO_IDENTITY_VARS}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1")

    def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(unshared(cmd, hostname="nodomain"), cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    probe = tmp_path / "probe"
    run(["git", "init", "-q", str(probe)], tmp_path)
    if run(["git", "var", "GIT_COMMITTER_IDENT"], probe, check=False).returncode == 0:
        pytest.skip("git finds an identity here anyway (/etc/mailname?)")
    return run


def test_daemon_commits_and_merges_without_identity(tmp_path: Path, nodomain: object) -> None:
    run = nodomain
    assert callable(run)
    a, b = tmp_path / "A", tmp_path / "B"
    run(["git", "init", "-q", "-b", "main", str(a)], tmp_path)
    run(["annexsync", "init", "A"], a)
    (a / "a.txt").write_text("from A\n")
    run([sys.executable, "-c", COMMIT, str(a), "a.txt"], a)  # dulwich commit
    run(["git", "clone", "-q", str(a), str(b)], tmp_path)
    # git-annex 10.20261026 itself fails here ("git-annex: failed to read sha from
    # git commit-tree" in init), so its repository gets an identity of its own.
    run(["git", "config", "user.name", "B"], b)
    run(["git", "config", "user.email", "b@example.com"], b)
    run(["git", "annex", "init", "-q", "B"], b)
    (b / "b.txt").write_text("from B\n")
    run(["git", "annex", "add", "-q", "b.txt"], b)
    run(["git", "annex", "sync", "-q"], b)  # pushes to A's synced/main
    (a / "c.txt").write_text("A again\n")
    run([sys.executable, "-c", COMMIT, str(a), "c.txt"], a)
    # The daemon's receive: a real merge (both sides moved), so git needs an identity.
    run([sys.executable, "-c", RECEIVE, str(a)], a)
    files = run(["git", "ls-files"], a).stdout.split()
    assert {"a.txt", "b.txt", "c.txt"} <= set(files)
    parents = run(["git", "log", "-1", "--format=%P"], a).stdout.split()
    assert len(parents) == 2, "the receive made a merge commit"
    name = login_name()
    assert run(["git", "config", "user.email"], a).stdout.strip() == name
    # git-annex's peer sees our merge and finishes the round trip.
    run(["git", "annex", "sync", "-q"], b)
    assert (b / "c.txt").exists()
