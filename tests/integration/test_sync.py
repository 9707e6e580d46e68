"""``sync`` against real git and git-annex (spec 8.2-8.4, interop checks 12.8, 12.9).

Repositories on our side are made with ``AnnexRepo.init`` / ``open`` and
``core.ops.add``; the other side is real git-annex.  Content is never
transferred here (step 5 belongs to the transfer code), so whereis answers
name the repository that added each file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from core import gitops
from core.daemon.jobs import find_conflicts
from core.errors import MergeConflict
from core.ops.add import add
from core.ops.conflicts import FIX_MESSAGE
from core.ops.sync import SyncResult, list_remotes, receive, sync
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git

# --- helpers ------------------------------------------------------------------


def ours_clone(src: Path, dest: Path, description: str) -> AnnexRepo:
    git(dest.parent, "clone", "-q", str(src), dest.name)
    return AnnexRepo.init(dest, description)


def theirs_clone(src: Path, dest: Path, description: str) -> Path:
    git(dest.parent, "clone", "-q", str(src), dest.name)
    annex(dest, "init", "-q", description)
    return dest


def write(repo: Path, rel: str, text: str) -> Path:
    p = repo / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink() or p.exists():
        p.unlink()
    p.write_text(text)
    return p


def our_add(repo: AnnexRepo, *rels: str, unlocked: bool = False) -> None:
    if unlocked:
        git(repo.path, "config", "annex.addunlocked", "true")
    with AnnexRepo.open(repo.path) as fresh:
        add(fresh, [str(repo.path / r) for r in rels])
    if unlocked:
        git(repo.path, "config", "--unset", "annex.addunlocked")


def status(repo: Path) -> str:
    """``git status --porcelain`` as git sees the tree with no filter at all."""
    return gitops.run_git(repo, ["status", "--porcelain"]).stdout.decode()


def tree(repo: Path) -> str:
    return git(repo, "ls-tree", "-r", "HEAD")


def whereis(repo: Path) -> dict[str, set[str]]:
    out = annex(repo, "whereis", "--json")
    found = {}
    for line in out.splitlines():
        item = json.loads(line)
        found[item["file"]] = {w["uuid"] for w in item["whereis"]}
    return found


def fresh(repo: AnnexRepo) -> AnnexRepo:
    return AnnexRepo.open(repo.path)


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    b = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(b))
    annex(b, "init", "-q", "bare")
    return b


# --- pure helpers -------------------------------------------------------------


def test_parse_push_porcelain() -> None:
    out = (
        "To /tmp/x\n"
        "=\trefs/heads/main:refs/heads/main\t[up to date]\n"
        "!\trefs/heads/main:refs/heads/main\t[remote rejected] (branch is currently checked out)\n"
        "+\trefs/heads/git-annex:refs/heads/synced/git-annex\tabc...def (forced update)\n"
        "Done\n"
    )
    refs = gitops.parse_push_porcelain(out)
    assert [(r.ref, r.ok) for r in refs] == [
        ("refs/heads/main", True), ("refs/heads/main", False),
        ("refs/heads/synced/git-annex", True),
    ]


def test_remote_listing_honours_cost_and_flags(tmp_path: Path) -> None:
    repo = AnnexRepo.init(tmp_path / "r", "r")
    git(repo.path, "remote", "add", "far", "ssh://example.invalid/x")
    git(repo.path, "remote", "add", "near", str(tmp_path))
    git(repo.path, "config", "remote.far.annex-sync", "false")
    git(repo.path, "config", "remote.near.annex-readonly", "true")
    remotes = list_remotes(fresh(repo))
    assert [r.name for r in remotes] == ["near", "far"]
    assert remotes[0].readonly and not remotes[1].sync


# --- 12.8: against a bare repository ------------------------------------------


@pytest.mark.interop
def test_sync_with_bare_then_git_annex_sees_everything(tmp_path: Path, bare: Path) -> None:
    repo = ours_clone(bare, tmp_path / "ours", "ours")
    write(repo.path, "locked.dat", "locked content\n")
    write(repo.path, "sub/unlocked.dat", "unlocked content\n")
    our_add(repo, "locked.dat")
    our_add(repo, "sub/unlocked.dat", unlocked=True)
    result = sync(fresh(repo))
    assert result.committed is not None
    assert result.pushed["origin"]["refs/heads/main"] is True
    assert result.pushed["origin"]["refs/heads/synced/git-annex"] is True
    assert status(repo.path) == ""
    heads = git(bare, "for-each-ref", "--format=%(refname)")
    assert "refs/heads/main" in heads and "refs/heads/synced/git-annex" in heads

    peer = theirs_clone(bare, tmp_path / "peer", "peer")
    annex(peer, "sync")
    assert (peer / "locked.dat").is_symlink()
    assert git(peer, "show", "HEAD:sub/unlocked.dat").startswith("/annex/objects/")
    where = whereis(peer)
    assert where["locked.dat"] == {repo.uuid} and where["sub/unlocked.dat"] == {repo.uuid}

    write(peer, "theirs.dat", "added by git-annex\n")
    annex(peer, "add", "-q", "theirs.dat")
    annex(peer, "sync")
    peer_uuid = git(peer, "config", "annex.uuid").strip()
    result = sync(fresh(repo))
    assert "refs/remotes/origin/main" in result.merged
    assert (repo.path / "theirs.dat").is_symlink()
    assert (repo.path / "sub/unlocked.dat").read_text() == "unlocked content\n"
    again = fresh(repo)
    key = git(repo.path, "annex", "lookupkey", "theirs.dat").strip()
    assert peer_uuid in again.state.locations(key)
    assert status(repo.path) == ""


# --- 12.8: against a non-bare peer, both directions ---------------------------


@pytest.mark.interop
def test_sync_with_non_bare_peer_both_ways(tmp_path: Path) -> None:
    peer = tmp_path / "peer"
    peer.mkdir()
    git(peer, "init", "-q")
    annex(peer, "init", "-q", "peer")
    write(peer, "first.dat", "first\n")
    annex(peer, "add", "-q", "first.dat")
    git(peer, "commit", "-q", "-m", "first")
    repo = ours_clone(peer, tmp_path / "ours", "ours")
    write(repo.path, "mine.dat", "mine\n")
    our_add(repo, "mine.dat")
    result = sync(fresh(repo))
    assert result.pushed["origin"]["refs/heads/main"] is False  # checked out there
    assert result.pushed["origin"]["refs/heads/synced/main"] is True
    refs = git(peer, "for-each-ref", "--format=%(refname)")
    assert "refs/heads/synced/main" in refs and "refs/heads/synced/git-annex" in refs

    annex(peer, "sync")
    assert (peer / "mine.dat").is_symlink()
    assert whereis(peer)["mine.dat"] == {repo.uuid}

    # reverse: git-annex pushes into our repository; our receive side merges
    git(peer, "remote", "add", "ours", str(repo.path))
    write(peer, "theirs.dat", "theirs\n")
    annex(peer, "add", "-q", "theirs.dat")
    annex(peer, "sync", "ours")
    ours_refs = git(repo.path, "for-each-ref", "--format=%(refname)")
    assert "refs/heads/synced/main" in ours_refs
    assert "refs/heads/synced/git-annex" in ours_refs
    received = receive(fresh(repo))
    assert received.merged == ["refs/heads/synced/main"]
    assert (repo.path / "theirs.dat").is_symlink()
    refs_after = git(repo.path, "for-each-ref", "--format=%(refname)")
    assert "refs/heads/synced/main" not in refs_after
    assert "refs/heads/synced/git-annex" in refs_after  # never deleted (8.3)
    peer_uuid = git(peer, "config", "annex.uuid").strip()
    key = git(repo.path, "annex", "lookupkey", "theirs.dat").strip()
    assert peer_uuid in fresh(repo).state.locations(key)
    assert tree(repo.path) == tree(peer)


# --- convergence: annexsync and git-annex changing at the same time -----------


@pytest.mark.interop
def test_concurrent_changes_converge(tmp_path: Path, bare: Path) -> None:
    seed = theirs_clone(bare, tmp_path / "seed", "seed")
    write(seed, "shared.dat", "shared\n")
    annex(seed, "add", "-q", "shared.dat")
    annex(seed, "sync")
    repo = ours_clone(bare, tmp_path / "ours", "ours")
    peer = theirs_clone(bare, tmp_path / "peer", "peer")
    annex(peer, "sync")
    sync(fresh(repo))

    write(repo.path, "a/ours.dat", "from annexsync\n")
    write(repo.path, "u.dat", "unlocked by annexsync\n")
    our_add(repo, "a/ours.dat")
    our_add(repo, "u.dat", unlocked=True)
    write(peer, "b/theirs.dat", "from git-annex\n")
    annex(peer, "add", "-q", "b/theirs.dat")
    annex(peer, "sync")  # git-annex first
    sync(fresh(repo))  # we merge theirs and push ours
    annex(peer, "sync")
    sync(fresh(repo))
    annex(peer, "sync")

    assert tree(repo.path) == tree(peer)
    ours_where, theirs_where = whereis(repo.path), whereis(peer)
    assert ours_where == theirs_where
    assert ours_where["a/ours.dat"] == {repo.uuid}
    assert len(ours_where) == 4
    for branch_file in _location_logs(peer):
        mine = set(git(repo.path, "show", f"git-annex:{branch_file}").splitlines())
        theirs = set(git(peer, "show", f"git-annex:{branch_file}").splitlines())
        assert mine == theirs, branch_file  # no lost line, either side
    assert status(repo.path) == ""
    assert (repo.path / "u.dat").read_text() == "unlocked by annexsync\n"


def _location_logs(repo: Path) -> list[str]:
    names = git(repo, "ls-tree", "-r", "--name-only", "git-annex").splitlines()
    return [n for n in names if n.endswith(".log") and "/" in n]


# --- 12.9: conflicts ------------------------------------------------------------


# Names whose variants git-annex spells in its own way: a dotfile (no
# extension), a dotfile below a directory, a double extension.
ODD_NAMES = (".bashrc", "sub/.hidden", "a.tar.gz")


def _conflict_setup(tmp_path: Path, bare: Path) -> tuple[AnnexRepo, Path]:
    seed = theirs_clone(bare, tmp_path / "seed", "seed")
    git(seed, "config", "annex.dotfiles", "true")  # dotfiles annexed, so they can conflict
    write(seed, "doc.txt", "base\n")
    write(seed, "same.txt", "base same\n")
    for name in ODD_NAMES:
        write(seed, name, f"base {name}\n")
    annex(seed, "add", "-q", "doc.txt", "same.txt", *ODD_NAMES)
    annex(seed, "sync")
    repo = ours_clone(bare, tmp_path / "ours", "ours")
    git(repo.path, "config", "annex.dotfiles", "true")
    sync(fresh(repo))
    peer = theirs_clone(bare, tmp_path / "peer", "peer")
    git(peer, "config", "annex.dotfiles", "true")
    annex(peer, "sync")
    return repo, peer


@pytest.mark.interop
def test_annexed_conflict_resolves_like_git_annex(tmp_path: Path, bare: Path) -> None:
    repo, peer = _conflict_setup(tmp_path, bare)
    # both edit doc.txt: git-annex locked, we unlocked; both make same.txt identical
    write(peer, "doc.txt", "edited by git-annex\n")
    write(peer, "same.txt", "identical edit\n")
    for name in ODD_NAMES:
        write(peer, name, f"git-annex's {name}\n")
        write(repo.path, name, f"annexsync's {name}\n")
    annex(peer, "add", "-q", "doc.txt", "same.txt", *ODD_NAMES)
    annex(peer, "sync")
    write(repo.path, "doc.txt", "edited by annexsync\n")
    write(repo.path, "same.txt", "identical edit\n")
    our_add(repo, "doc.txt", "same.txt", unlocked=True)
    our_add(repo, *ODD_NAMES)

    twin = tmp_path / "twin"  # the same state, resolved by git-annex instead
    shutil.copytree(repo.path, twin, symlinks=True)
    annex(twin, "init", "-q")
    annex(twin, "sync", "--no-push", "--no-content")

    result = sync(fresh(repo))
    assert set(result.resolved) == {"doc.txt", "same.txt", *ODD_NAMES}
    assert tree(repo.path) == tree(twin)  # the same .variant- names as git-annex's
    # ``..variant-XXXX.bashrc``, ``sub.variant-XXXX.hidden`` (at the top!) and
    # ``a.tar.variant-XXXX.gz``: the daemon still tells which file they stand for
    found = find_conflicts(str(repo.path))
    for name in ODD_NAMES:
        assert len(found[name]) == 2, (name, found)
        assert all(".variant-" in v for v in found[name])
    assert git(repo.path, "log", "-1", "--format=%s").strip() == FIX_MESSAGE
    names = git(repo.path, "ls-files").split()
    assert "doc.txt" not in names and any(n.startswith("doc.variant-") for n in names)
    variant = next(n for n in names if n.startswith("doc.variant-") and
                   not (repo.path / n).is_symlink())
    assert (repo.path / variant).read_text() == "edited by annexsync\n"  # content in place
    assert status(repo.path) == ""

    annex(peer, "sync")  # the next sync, either way, is clean
    assert tree(peer) == tree(repo.path)
    again = sync(fresh(repo))
    assert again.resolved == [] and tree(peer) == tree(repo.path)
    assert not gitops.merge_in_progress(repo.gitdir)


@pytest.mark.interop
def test_plain_git_conflict_stays_unresolved(tmp_path: Path, bare: Path) -> None:
    seed = theirs_clone(bare, tmp_path / "seed", "seed")
    write(seed, "small.txt", "base\n")
    git(seed, "add", "small.txt")  # no largefiles: git-annex keeps it in git
    git(seed, "commit", "-q", "-m", "small")
    annex(seed, "sync")
    repo = ours_clone(bare, tmp_path / "ours", "ours")
    sync(fresh(repo))
    peer = theirs_clone(bare, tmp_path / "peer", "peer")
    annex(peer, "sync")
    write(peer, "small.txt", "theirs\n")
    git(peer, "commit", "-q", "-a", "-m", "theirs")
    annex(peer, "sync")
    write(repo.path, "small.txt", "ours\n")

    with pytest.raises(MergeConflict) as err:
        sync(fresh(repo))
    assert err.value.paths == ["small.txt"]
    assert "small.txt" in str(err.value)
    assert gitops.merge_in_progress(repo.gitdir)
    assert git(repo.path, "show", ":2:small.txt") == "ours\n"  # nothing lost
    assert git(repo.path, "show", ":3:small.txt") == "theirs\n"
    with pytest.raises(MergeConflict):  # refuses until the user resolves it
        sync(fresh(repo))

    write(repo.path, "small.txt", "resolved\n")
    gitops.run_git(repo.path, ["add", "small.txt"])
    result: SyncResult = sync(fresh(repo))
    assert result.committed is not None
    annex(peer, "sync")
    assert (peer / "small.txt").read_text() == "resolved\n"
    assert os.path.exists(repo.path / "small.txt")
