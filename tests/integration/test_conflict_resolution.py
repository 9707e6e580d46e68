"""A conflict resolved by the user stays resolved (spec 8.4, sync's settled merges).

Two of our repositories, A and B, each with the other as a path remote, both
edit the same unlocked file.  Each merges the other's edit and resolves it
into ``.variant-XXXX`` files on its own, so there are two different fix
commits with one tree.  The user then keeps B's variant on A *before* A has
merged B's fix (``keep_variant``, what ``Core.resolve_conflict`` runs).  git's
three-way merge of the two histories would bring the variants back (its merge
base is the state before the conflict); ``merge_ref`` must not.  No daemon:
``core.ops.sync`` only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.daemon.jobs import conflicts, find_conflicts, keep_variant
from core.ops.add import add
from core.ops.conflicts import FIX_MESSAGE
from core.ops.sync import SyncResult, commit_worktree, list_remotes, merge_ref, pull, push, sync
from core.ops.transfer import get, sync_content
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git


def _open(path: Path) -> AnnexRepo:
    return AnnexRepo.open(path)


def _commit(path: Path) -> None:
    with _open(path) as repo:
        commit_worktree(repo)


def _add(path: Path, rel: str, text: str) -> None:
    (path / rel).write_text(text)
    with _open(path) as repo:
        add(repo, [str(path / rel)])
        commit_worktree(repo)


def _remote(repo: AnnexRepo, name: str):  # type: ignore[no-untyped-def]
    return next(r for r in list_remotes(repo) if r.name == name)


def _fetch(path: Path, remote: str) -> None:
    with _open(path) as repo:
        result = SyncResult()
        pull(repo, _remote(repo, remote), result, merge=False)
        assert result.fetched == [remote]
        repo.branch.merge_refs()  # the location logs, as sync's step 4


def _merge(path: Path, ref: str) -> SyncResult:
    with _open(path) as repo:
        result = SyncResult()
        assert merge_ref(repo, ref.encode(), result)
        return result


def _push(path: Path, remote: str) -> None:
    with _open(path) as repo:
        push(repo, _remote(repo, remote), SyncResult())


def _sync(path: Path) -> SyncResult:
    with _open(path) as repo:
        return sync(repo, content=True, content_sync=sync_content)


def _head(path: Path) -> str:
    return git(path, "rev-parse", "HEAD").strip()


def _tree(path: Path) -> str:
    return git(path, "ls-tree", "-r", "HEAD")


def _variants(path: Path) -> list[str]:
    files = git(path, "ls-files").split() + [p.name for p in path.iterdir()]
    return sorted({f for f in files if ".variant-" in f})


def _status(path: Path) -> str:
    return git(path, "-c", "filter.annex.process=", "-c", "filter.annex.smudge=",
               "-c", "filter.annex.clean=", "status", "--porcelain")


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A and B with an unlocked ``seed.txt``, each the other's remote, both edited."""
    pa, pb = tmp_path / "A", tmp_path / "B"
    pa.mkdir()
    git(pa, "init", "-q")
    AnnexRepo.init(pa, "A").close()
    git(pa, "config", "annex.addunlocked", "true")
    (pa / "seed.txt").write_text("seed\n")
    with _open(pa) as a:
        add(a, [str(pa / "seed.txt")])
        commit_worktree(a, "seed")
    git(tmp_path, "clone", "-q", str(pa), "B")
    AnnexRepo.init(pb, "B").close()
    git(pb, "config", "annex.addunlocked", "true")
    git(pb, "remote", "rename", "origin", "a")
    git(pa, "remote", "add", "b", str(pb))
    _sync(pa)
    _sync(pb)
    # Both edit while paused: each commits its own edit only.
    (pa / "seed.txt").write_text("from A\n")
    (pb / "seed.txt").write_text("from B\n")
    _commit(pa)
    _commit(pb)
    # Both fetch, then each merges the other's edit before seeing the other's fix.
    _fetch(pa, "b")
    _fetch(pb, "a")
    assert _merge(pa, "refs/remotes/b/main").resolved == ["seed.txt"]
    assert _merge(pb, "refs/remotes/a/main").resolved == ["seed.txt"]
    return pa, pb


def _fix(path: Path) -> str:
    return git(path, "log", "-1", "--format=%H %s").strip()


def _keep_bs_variant(pa: Path) -> None:
    variants = find_conflicts(str(pa))["seed.txt"]
    assert len(variants) == 2
    with _open(pa) as repo:  # the daemon would have downloaded B's variant by now
        get(repo, [str(pa / v) for v in variants])
    keep = next(v for v in variants if (pa / v).read_text() == "from B\n")
    keep_variant(str(pa), "seed.txt", keep, variants)
    assert (pa / "seed.txt").read_text() == "from B\n" and not _variants(pa)


def _assert_settled(pa: Path, pb: Path) -> None:
    for p in (pa, pb):
        assert not _variants(p), (p.name, _variants(p), git(p, "log", "--graph", "--oneline"))
        assert (p / "seed.txt").read_text() == "from B\n"
        assert find_conflicts(str(p)) == {}
        assert _status(p) == ""
    assert _tree(pa) == _tree(pb)
    # A further sync in both directions is a no-op.
    heads = (_head(pa), _head(pb))
    for p in (pa, pb, pa, pb):
        again = _sync(p)
        assert again.merged == [] and again.resolved == [] and not again.errors, again
    assert (_head(pa), _head(pb)) == heads
    assert not _variants(pa) and not _variants(pb)


def test_two_fixes_with_one_tree(pair: tuple[Path, Path]) -> None:
    pa, pb = pair
    fa, fb = _fix(pa), _fix(pb)
    assert fa != fb and fa.endswith(FIX_MESSAGE) and fb.endswith(FIX_MESSAGE)
    assert _tree(pa) == _tree(pb)  # deterministic resolution (8.4)
    assert len(_variants(pa)) == 2
    # Exchanging the fixes merges cleanly, to that same tree.
    tree = _tree(pa)
    for p in (pa, pb, pa):
        result = _sync(p)
        assert result.resolved == [] and not result.errors
        assert _tree(p) == tree
    assert _head(pa) == _head(pb)


def test_resolution_pushed_before_the_peer_merged_our_fix(pair: tuple[Path, Path]) -> None:
    """B merges A's resolution on top of its own fix (B's side of the race)."""
    pa, pb = pair
    _keep_bs_variant(pa)
    _push(pa, "b")  # A's resolution lands in B's synced/main; A has not seen B's fix
    result = _sync(pb)
    assert result.resolved == [] and not _variants(pb)
    assert (pb / "seed.txt").read_text() == "from B\n"
    parents = git(pb, "log", "-1", "--format=%P").split()
    assert len(parents) == 2  # a merge commit: B's own fix stays in its history
    _sync(pa)  # A fast-forwards to B's merge
    _assert_settled(pa, pb)


def test_peer_fix_merged_after_our_resolution(pair: tuple[Path, Path]) -> None:
    """A merges B's fix on top of its resolution (A's side of the race)."""
    pa, pb = pair
    _keep_bs_variant(pa)
    resolved_tree = _tree(pa)
    result = _sync(pa)  # merges B's fix, then pushes
    assert result.merged and result.resolved == []
    assert _tree(pa) == resolved_tree
    _sync(pb)
    _assert_settled(pa, pb)


def test_resolution_after_the_fixes_were_exchanged(pair: tuple[Path, Path]) -> None:
    pa, pb = pair
    for p in (pa, pb, pa):
        _sync(p)
    _keep_bs_variant(pa)
    _sync(pa)
    _sync(pb)
    _assert_settled(pa, pb)


def test_both_sides_edit_after_the_resolution_still_merge(pair: tuple[Path, Path]) -> None:
    """The settled merge does not swallow later work on the other side."""
    pa, pb = pair
    _keep_bs_variant(pa)
    _add(pa, "a-later.txt", "later on A\n")
    _push(pa, "b")
    _add(pb, "b-later.txt", "later on B\n")
    _sync(pb)
    _sync(pa)
    _sync(pb)
    for p in (pa, pb):
        assert (p / "a-later.txt").read_text() == "later on A\n"
        assert (p / "b-later.txt").read_text() == "later on B\n"
        assert (p / "seed.txt").read_text() == "from B\n" and not _variants(p)
    assert _tree(pa) == _tree(pb)


# --- the rule never uses a state that our own history already passed ----------


def _plain_commit(path: Path, message: str) -> None:
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", message)


def test_a_matching_tree_in_common_history_does_not_count(tmp_path: Path) -> None:
    """ours: S -> X(+f) -> Y(-f, tree of S); theirs: S -> X -> Z(+g).

    S has our tip's tree and is in their history, but it is our ancestor too:
    git's merge (base X) gives S + g, not their tree (which still has f).
    """
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    git(ours, "init", "-q")
    (ours / "s.txt").write_text("s\n")
    _plain_commit(ours, "S")
    (ours / "f.txt").write_text("f\n")
    _plain_commit(ours, "X")
    git(tmp_path, "clone", "-q", str(ours), "theirs")
    (theirs / "g.txt").write_text("g\n")
    _plain_commit(theirs, "Z")
    (ours / "f.txt").unlink()
    _plain_commit(ours, "Y")
    AnnexRepo.init(ours, "ours").close()
    git(ours, "fetch", "-q", str(theirs), "main:refs/remotes/t/main")
    with _open(ours) as repo:
        result = SyncResult()
        assert merge_ref(repo, b"refs/remotes/t/main", result)
    assert sorted(git(ours, "ls-files").split()) == ["g.txt", "s.txt"]


# --- whose version is which (issue 19: the conflict view names devices) -------


@pytest.mark.interop
def test_a_version_whose_log_has_not_arrived_names_no_device(tmp_path: Path) -> None:
    """B uploads its version's content to A (real git-annex ``copy --to``), which logs
    A as having it; A merges B's edit before B's location log reaches it.  Both
    versions then have A as their first location, and B's must not be called
    "this device": neither is named until B's log arrives, then each is."""
    pa, pb = tmp_path / "A", tmp_path / "B"
    pa.mkdir()
    git(pa, "init", "-q")
    AnnexRepo.init(pa, "A").close()
    _add(pa, "seed.txt", "seed\n")
    git(tmp_path, "clone", "-q", str(pa), "B")
    AnnexRepo.init(pb, "B").close()
    git(pb, "remote", "rename", "origin", "a")
    git(pa, "remote", "add", "b", str(pb))
    for path, text in ((pa, "from A\n"), (pb, "from B\n")):
        (path / "seed.txt").unlink()
        _add(path, "seed.txt", text)
    annex(pb, "copy", "-q", "--to", "a", "seed.txt")
    with _open(pa) as repo:
        pull(repo, _remote(repo, "b"), SyncResult(), merge=False)  # no git-annex merge yet
    assert _merge(pa, "refs/remotes/b/main").resolved == ["seed.txt"]

    def origins() -> dict[str, str]:
        (c,) = conflicts(str(pa))
        return {(pa / v).read_text(): c.origin(v) for v in c.variants}

    assert origins() == {"from A\n": "", "from B\n": ""}
    with _open(pa) as repo:
        repo.branch.merge_refs()  # B's location log arrives
    assert origins() == {"from A\n": "this device", "from B\n": "b"}
