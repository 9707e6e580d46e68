"""``sync``: what ``git annex sync`` does to branches, for git remotes.

Spec: repository-format.md 8.1-8.4 (refs, sequence, obligations, conflicts),
7 (git-annex branch merges), 3.2/3.5 (unlocked files with git's filter off).

Theory of operation
-------------------
``sync`` runs the steps of 8.2 for the checked-out branch B:

1. commit: the journal to the git-annex branch; then, with annex.autocommit,
   the work tree: deleted tracked files leave the index, changed plain files
   and symlinks are restaged, and an unlocked annexed file whose content
   changed is re-added through ``Adder`` (content unchanged -> only its stat
   is refreshed, so git with the filter off keeps seeing it clean);
   message ``git-annex in <description>``;
2. merge ``refs/heads/synced/B`` (pushed here by others) into B and delete
   it if it did not move meanwhile -- the receive side of 8.3, also offered
   alone as ``receive``;
3. per remote in cost order (skipping annex-sync=false and annex-pull=false):
   ``git fetch``, then merge ``R/B`` and ``R/synced/B`` when not contained;
4. union-merge every ``*/git-annex`` ref (``AnnexBranch.merge_refs``);
5. content, only when ``content=True``: the ``content_sync`` hook (the
   transfer code's job), then steps 1, 3 and 4 again as 8.2 says;
6. per remote (skipping annex-readonly and annex-push=false, and remotes
   already holding our tips): push B to B; if refused (a non-bare remote with
   B checked out), B to synced/B; force git-annex to synced/git-annex; then
   git-annex to git-annex, whose refusal is expected and ignored.  B refused
   under both names is an error of that remote, as is synced/git-annex refused.

Settled merges: before asking git, ``merge_ref`` checks whether one side
already holds a state of the other *by content* (``_settle``), looking at the
commits of each side after the merge bases:

* our tip's tree is the tree of an incoming commit: the other side continued
  from exactly our state, so the result is the incoming tip's tree;
* the incoming tip's tree is the tree of one of our commits: the result is
  our tree (identical tips are where both rules meet; when both hold with
  different trees, git decides);
* otherwise, an incoming commit with the tree of one of our commits (both
  passed through that state, then both went on) is first recorded as merged
  with our tree, so git's three-way merge of the incoming tip uses it as the
  merge base.

A settled result is a merge commit with both parents, built as an object and
fast-forwarded to with git (which checks the work tree as for any merge).
Why: two repositories resolving the same conflict (8.4) make two different
fix commits with one tree.  If one of them resolves the variants (keeps one
as the original name) before it merged the other's fix, git's merge base is
the state *before* the conflict (a criss-cross), so git sees the original
name modified on one side and deleted on the other, and the variants come
back.  A matching commit is verified not to be an ancestor of the side it is
compared with; a walk longer than ``SETTLED_WALK_LIMIT`` commits, a shallow
history or unrelated histories leave the merge to git as before.  The
results are ordinary commits, so git-annex peers merge them as usual, and two
identical conflict fixes still merge to their common tree (8.4).

Merges of merges: when both tips have one tree (each side merged the other's
work at once, as paired devices pushing to each other do), the settled merge
is the *agreed* one (``gitops.make_agreed_merge``): both sides build the very
same commit, so the next exchange finds nothing to merge.  A merge commit of
one's own on each side would be merged again on the other, and so on without
end (issue 13).

Merges run ``git merge`` through ``core.gitops`` (filter off).  git then
writes pointer text for unlocked files it checks out, so after every merge
``_fix_worktree`` does what git-annex's post-merge hook does: each unlocked
file the merge touched whose object is present gets its content back (copy,
or hard link with annex.thin) and a fresh index stat.  Conflicts go to
``conflicts.resolve`` (8.4).  A conflict it cannot resolve stops further
merges of B, lets the git-annex branch merge and pushes still run, and is
raised at the end as ``MergeConflict``; the next ``sync`` refuses to start
until the user resolved it (a resolved-but-uncommitted merge is committed).

Errors talking to one remote are recorded in ``SyncResult.errors`` and the
other remotes still sync, as git-annex does.  ``SyncResult`` is built step by
step, so unlike most of our values it is a plain (mutable) dataclass.
"""

from __future__ import annotations

import heapq
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dulwich.diff_tree import tree_changes
from dulwich.graph import can_fast_forward, find_merge_base
from dulwich.index import ConflictedIndexEntry, Index, IndexEntry, index_entry_from_stat
from dulwich.object_store import iter_tree_contents
from dulwich.objects import Blob, Commit, ObjectID
from dulwich.refs import Ref

from core import failures, gitlock, gitops
from core.errors import GitCommandError, MergeConflict, RemoteUnavailable, RepoError
from core.ops.add import Adder
from core.ops.conflicts import place_unlocked, resolve
from core.progress import NullProgress, Progress
from core.remotes import RemoteInfo as Remote
from core.remotes import RemoteKind, close_remotes, git_access, open_remote
from core.remotes import list_remotes as all_remotes
from core.repo.key import Key
from core.repo.pointer import MAX_POINTER, parse_pointer
from core.repo.repository import AnnexRepo, config_value, parse_bool

logger = logging.getLogger(__name__)

MODE_LINK = 0o120000
MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_GITLINK = 0o160000
ANNEX_BRANCH = "refs/heads/git-annex"
SETTLED_WALK_LIMIT = 1000  # commits looked at per side for a settled merge


ContentSync = Callable[[AnnexRepo, Sequence[Remote], Progress], None]
"""Step 5 hook: transfer content with these remotes (provided by the transfer code)."""


@dataclass
class SyncResult:
    committed: bytes | None = None  # the work-tree commit of step 1
    merged: list[str] = field(default_factory=list)  # refs merged into B
    resolved: list[str] = field(default_factory=list)  # conflicts fixed with variants
    fetched: list[str] = field(default_factory=list)
    annex_merged: list[str] = field(default_factory=list)  # */git-annex refs merged
    pushed: dict[str, dict[str, bool]] = field(default_factory=dict)  # remote -> ref -> ok
    errors: dict[str, str] = field(default_factory=dict)  # remote (or step) -> message
    content_synced: bool = False


# --- remotes ------------------------------------------------------------------


def list_remotes(repo: AnnexRepo) -> list[Remote]:
    """Remotes git can fetch from and push to, cheapest first.

    Proxied remotes (a cluster, its nodes) share their gateway's URL but have
    no git side: only the gateway is fetched and pushed (clusters.md 4.6).
    """
    return [r for r in all_remotes(repo) if r.url and r.git_remote]


def content_remotes(repo: AnnexRepo, names: Sequence[str] | None,
                    chosen: Sequence[Remote]) -> list[Remote]:  # fmt: skip
    """Step 5's remotes: the chosen git remotes and what their gateways proxy.

    By default a proxied remote takes part when its annex-sync allows, so a
    cluster does and its nodes (annex-sync=false, ``core.proxied``) do not;
    named remotes take part as named (clusters.md 4.6).
    """
    gateways = {r.name for r in chosen}
    proxied = [r for r in all_remotes(repo) if r.via is not None]
    if names is None:
        extra = [r for r in proxied if r.via in gateways and r.sync]
    else:
        extra = [r for r in proxied if r.name in names]
    return sorted([*chosen, *extra], key=lambda r: (r.cost, r.name))


def _chosen(repo: AnnexRepo, names: Sequence[str] | None, result: SyncResult) -> list[Remote]:
    remotes = list_remotes(repo)
    if names is None:
        return [r for r in remotes if r.sync]
    by_name = {r.name: r for r in [*remotes, *(r for r in all_remotes(repo) if r.via)]}
    for missing in [n for n in names if n not in by_name]:
        result.errors[missing] = f"there is no git remote named {missing!r}"
    return [r for r in remotes if r.name in names]


# --- step 1: committing the work tree -----------------------------------------


def commit_worktree(repo: AnnexRepo, message: str | None = None) -> bytes | None:
    """Step 1 (8.2): journal, then tracked changes; return the new commit or None.

    Raises:
        MergeConflict: an earlier merge left conflicts the user must resolve.
    """
    repo.branch.commit()
    if repo.bare or repo.current_branch() is None:
        return None
    _check_no_conflicts(repo)
    autocommit = _config_bool(repo, b"autocommit", True)
    _refresh(repo, stage=autocommit)
    heads = gitops.merge_heads(repo.gitdir)
    if not autocommit and not heads:
        return None
    if _unborn_and_empty(repo):
        return None
    commit = gitops.commit_index(repo.git, message or _default_message(repo), heads)
    gitops.clear_merge_state(repo.gitdir)
    return commit


def _default_message(repo: AnnexRepo) -> str:
    description = repo.state.descriptions().get(repo.uuid) or str(repo.path)
    return f"git-annex in {description}"


def _config_bool(repo: AnnexRepo, name: bytes, default: bool) -> bool:
    return parse_bool(config_value(repo.git.get_config_stack(), b"annex", name), default)


def _check_no_conflicts(repo: AnnexRepo) -> None:
    index = repo.git.open_index()
    paths = [n.decode("utf-8", "surrogateescape") for n, e in index.items()
             if isinstance(e, ConflictedIndexEntry)]
    if paths:
        raise MergeConflict(sorted(paths))


def _unborn_and_empty(repo: AnnexRepo) -> bool:
    head = repo.head_ref()
    return head is not None and ref_sha(repo, head) is None and len(repo.git.open_index()) == 0


def _refresh(repo: AnnexRepo, stage: bool) -> None:
    """Restage what changed in the work tree (or only refresh stats of the unchanged).

    One hold of ``index.lock`` (``core.gitlock``) covers the read-modify-write
    of the entries; files whose content changed are re-added afterwards
    (``Adder`` takes the lock again, briefly), so the lock is never held while
    content is hashed or the journal lock is waited for.
    """
    with gitlock.locked_index(repo.git) as index:
        racy_after = _index_mtime(index)
        touched: list[bytes] = []
        readd: list[str] = []
        for name, entry in list(index.items()):
            if not isinstance(entry, IndexEntry) or entry.mode == MODE_GITLINK:
                continue
            verdict = _examine(repo, index, name, entry, stage)
            if verdict == "readd":
                readd.append(name.decode("utf-8", "surrogateescape"))
            elif verdict == "touched" or (verdict == "same" and _mtime(entry) >= racy_after):
                touched.append(name)  # "same" but racily clean, e.g. just staged by add
        gitops.settle_index(index, repo.path, touched)
    if readd:
        Adder(repo).add([str(repo.path / rel) for rel in readd])
        with gitlock.locked_index(repo.git) as index:
            gitops.settle_index(index, repo.path, [os.fsencode(r) for r in readd])


def _index_mtime(index: Index) -> int:
    try:
        return int(os.stat(index.path).st_mtime)
    except FileNotFoundError:
        return 0


def _mtime(entry: IndexEntry) -> int:
    m = entry.mtime
    return int(m[0]) if isinstance(m, tuple) else int(m)


def _examine(repo: AnnexRepo, index: Index, name: bytes, entry: IndexEntry, stage: bool) -> str:
    """Update one index entry from the work tree; say what happened."""
    path = repo.path / os.fsdecode(name)
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        if stage:
            del index[name]
        return "removed"
    fresh = index_entry_from_stat(st, entry.sha, entry.mode)
    if (fresh.mtime, fresh.ctime, fresh.size, fresh.ino) == (
        entry.mtime, entry.ctime, entry.size, entry.ino
    ):
        return "same"
    data, mode = _worktree_blob(path, st, entry, repo)
    if data is None:
        return "readd" if stage else "same"
    if isinstance(data, Key) or (Blob.from_string(data).id == entry.sha and mode == entry.mode):
        index[name] = fresh
        return "touched"
    if not stage:
        return "same"
    blob = Blob.from_string(data)
    gitlock.add_object(repo.git, blob)
    index[name] = index_entry_from_stat(st, blob.id, mode)
    return "touched"


def _worktree_blob(
    path: Path, st: os.stat_result, entry: IndexEntry, repo: AnnexRepo
) -> tuple[bytes | Key | None, int]:
    """What git should hold for the file now: blob data, or the unchanged key
    of an unlocked file (stat refresh only), or None (re-add through Adder)."""
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(path).encode("utf-8", "surrogateescape"), MODE_LINK
    if not stat.S_ISREG(st.st_mode):
        return b"", entry.mode  # a directory now: leave it to the user
    mode = MODE_EXEC if st.st_mode & 0o111 else MODE_FILE
    old_key = _entry_key(repo, entry)
    if old_key is None:
        return (path.read_bytes(), mode) if entry.mode != MODE_LINK else (None, mode)
    head = _read_head(path)
    if parse_pointer(head) is not None:
        return head, entry.mode  # pointer text: content absent, or another key
    if _content_matches(path, old_key):
        return old_key, mode
    return None, mode


def _entry_key(repo: AnnexRepo, entry: IndexEntry) -> Key | None:
    """The key of an unlocked (pointer) entry; None for anything else."""
    if entry.mode == MODE_LINK or entry.size > MAX_POINTER * 64:
        return None
    obj = repo.git.object_store[entry.sha]
    return parse_pointer(obj.data) if isinstance(obj, Blob) else None


def _read_head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(MAX_POINTER + 1)


def _content_matches(path: Path, key: Key) -> bool:
    if key.size is not None and path.stat().st_size != key.size:
        return False
    hasher = key.new_hasher()
    if hasher is None:
        return False
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest() == key.expected_digest()


# --- merging into B -------------------------------------------------------------


AGREED_MESSAGE = "Merge two branches with one tree"


def merge_ref(repo: AnnexRepo, ref: bytes, result: SyncResult) -> bool:
    """Merge ``ref`` into the checked-out branch unless it is already contained.

    A side that already holds the other's state by content is settled without
    git's three-way merge (module header, "Settled merges").

    Raises:
        MergeConflict: conflicts without an annexed side remain (8.4).
        MergeFailed: git refused the merge (e.g. local changes in the way).
    """
    theirs = ref_sha(repo, ref)
    if theirs is None:
        return False
    old = _head_sha(repo)
    if old is not None and (theirs == old or can_fast_forward(repo.git, theirs, old)):
        return False
    name = ref.decode("utf-8", "surrogateescape")
    settle = _settle(repo, old, theirs) if old is not None else None
    if old is not None and settle is not None and settle.tree is not None:
        if settle.tree == _tree(repo, theirs) == _tree(repo, old):
            merge = gitops.make_agreed_merge(repo.git, settle.tree, old, theirs, AGREED_MESSAGE)
            gitops.fast_forward(repo.path, merge, name)
        else:
            _merge_as(repo, settle.tree, old, theirs, name)
        _fix_worktree(repo, old, [theirs, _head_sha(repo)])
        result.merged.append(name)
        return True
    if old is not None and settle is not None and settle.link is not None:
        # Their commit ``link`` holds a state our history passed through:
        # record it as merged (our tree), so git's merge base becomes it.
        link_id = settle.link.decode("ascii")
        _merge_as(repo, _tree_id(repo, old), old, settle.link, link_id)
    conflicts = gitops.merge(repo.path, name)
    try:
        if conflicts:
            result.resolved += resolve(repo, conflicts)
    finally:
        _fix_worktree(repo, old, [theirs, _head_sha(repo)])
    result.merged.append(name)
    return True


@dataclass(frozen=True)
class _Settle:
    """A settled merge: the result ``tree``, or a ``link`` commit to record first."""

    tree: ObjectID | None = None
    link: ObjectID | None = None


def _settle(repo: AnnexRepo, ours: ObjectID, theirs: ObjectID) -> _Settle | None:
    """How to merge when one side already holds a state of the other (module header)."""
    ours_tree, theirs_tree = _tree(repo, ours), _tree(repo, theirs)
    if ours_tree is None or theirs_tree is None:
        return None
    try:
        bases = set(find_merge_base(repo.git, [ours, theirs]))
    except KeyError:  # a shallow history: leave it to git
        return None
    if ours in bases:
        return None  # git fast-forwards
    if ours_tree == theirs_tree:
        return _Settle(tree=ours_tree)
    if not bases:
        return None  # unrelated histories: nothing was seen by both sides
    ours_side = _after_base(repo, ours, bases)
    theirs_side = _after_base(repo, theirs, bases)
    if ours_side is None or theirs_side is None:
        return None
    ours_seen = _seen(repo, ours_tree, theirs_side, ours)
    theirs_seen = _seen(repo, theirs_tree, ours_side, theirs)
    if ours_seen != theirs_seen:
        return _Settle(tree=theirs_tree if ours_seen else ours_tree)
    if ours_seen:
        return None  # each holds the other's tip state: ambiguous, let git decide
    our_trees = {c.tree for c in ours_side}
    for c in theirs_side:  # newest first
        if c.tree in our_trees and _seen(repo, c.tree, ours_side, theirs) \
                and not can_fast_forward(repo.git, c.id, ours):
            return _Settle(link=c.id)
    return None


def _after_base(repo: AnnexRepo, tip: ObjectID, bases: set[ObjectID]) -> list[Commit] | None:
    """Commits from ``tip`` down to the merge bases, newest first; None past the limit.

    A path around the bases can reach older history, so callers still check
    ancestry before trusting a commit found here.
    """
    store = repo.git.object_store
    out: list[Commit] = []
    seen: set[ObjectID] = set()
    heap: list[tuple[int, int, ObjectID]] = [(0, 0, tip)]
    while heap:
        _, _, cid = heapq.heappop(heap)
        if cid in seen or cid in bases:
            continue
        seen.add(cid)
        if len(seen) > SETTLED_WALK_LIMIT:
            return None
        try:
            commit = store[cid]
        except KeyError:  # beyond a shallow boundary
            continue
        if not isinstance(commit, Commit):
            continue
        out.append(commit)
        for parent in commit.parents:
            heapq.heappush(heap, (-int(commit.commit_time), len(seen), parent))
    return out


def _seen(repo: AnnexRepo, tree: ObjectID, side: Sequence[Commit], other: ObjectID) -> bool:
    """Whether a commit of ``side`` that ``other`` does not contain has ``tree``."""
    return any(c.tree == tree and not can_fast_forward(repo.git, c.id, other) for c in side)


def _merge_as(
    repo: AnnexRepo, tree: ObjectID, ours: ObjectID, theirs: ObjectID, name: str
) -> None:
    """Commit the merge of ``theirs`` (named ``name``) as ``tree`` and move the
    branch and work tree to it."""
    merge = gitops.make_commit(repo.git, tree, [ours, theirs], _merge_message(repo, name))
    gitops.fast_forward(repo.path, merge, name)


def _tree_id(repo: AnnexRepo, commit: ObjectID) -> ObjectID:
    tree = _tree(repo, commit)
    assert tree is not None
    return tree


def _merge_message(repo: AnnexRepo, name: str) -> str:
    """The message ``git merge --no-edit <name>`` would write."""
    if name.startswith("refs/heads/"):
        what = f"branch '{name}'"
    elif name.startswith("refs/remotes/"):
        what = f"remote-tracking branch '{name}'"
    else:
        what = f"commit '{name}'"
    branch = repo.current_branch()
    into = f" into {branch}" if branch and branch not in ("main", "master") else ""
    return f"Merge {what}{into}"


def _head_sha(repo: AnnexRepo) -> ObjectID | None:
    return ref_sha(repo, b"HEAD")


def ref_sha(repo: AnnexRepo, ref: bytes | str) -> ObjectID | None:
    """The commit a ref (or HEAD) points to, None when it does not exist."""
    name = Ref(ref.encode() if isinstance(ref, str) else ref)
    try:
        return repo.git.refs[name]
    except KeyError:
        return None


def _fix_worktree(
    repo: AnnexRepo, old: ObjectID | None, new: Sequence[ObjectID | None]
) -> None:
    """Post-merge: give unlocked files the merge touched their content back (3.2)."""
    changed = sorted(set(_changed_paths(repo, old, new)))
    if not changed:
        return
    with gitlock.locked_index(repo.git) as index:
        touched: list[bytes] = []
        for name in changed:
            entry = index[name] if name in index else None
            if not isinstance(entry, IndexEntry) or entry.mode == MODE_LINK:
                continue
            key = _entry_key(repo, entry)
            rel = name.decode("utf-8", "surrogateescape")
            if key is None or not repo.objects.has(key) or not _shows_pointer(repo.path / rel):
                continue
            place_unlocked(repo, index, rel, key, entry.mode, bytes(entry.sha))
            touched.append(name)
        gitops.settle_index(index, repo.path, touched)


def _shows_pointer(path: Path) -> bool:
    try:
        return not path.is_symlink() and parse_pointer(_read_head(path)) is not None
    except (FileNotFoundError, IsADirectoryError):
        return False


def _changed_paths(
    repo: AnnexRepo, old: ObjectID | None, new: Sequence[ObjectID | None]
) -> Iterator[bytes]:
    store = repo.git.object_store
    old_tree = _tree(repo, old)
    for commit in new:
        tree = _tree(repo, commit)
        if tree is None or tree == old_tree:
            continue
        if old_tree is None:
            yield from (e.path for e in iter_tree_contents(store, tree) if e.path is not None)
            continue
        for change in tree_changes(store, old_tree, tree):
            if change.new is not None and change.new.path is not None:
                yield change.new.path


def _tree(repo: AnnexRepo, commit: ObjectID | None) -> ObjectID | None:
    if commit is None:
        return None
    obj = repo.git.object_store[commit]
    return obj.tree if isinstance(obj, Commit) else None


# --- step 2 / the receive side (8.3) ------------------------------------------


def merge_synced_branch(repo: AnnexRepo, result: SyncResult) -> None:
    """Step 2: merge local ``synced/B`` into B, then delete it if it did not move.

    Not done in bare repositories (8.2).

    Raises:
        MergeConflict: see ``merge_ref``.
    """
    branch = repo.current_branch()
    if branch is None or repo.bare:
        return
    synced = Ref(f"refs/heads/synced/{branch}".encode())
    before = ref_sha(repo, synced)
    if before is None:
        return
    merge_ref(repo, synced, result)
    gitlock.retrying(lambda: repo.git.refs.remove_if_equals(synced, before))


def receive(repo: AnnexRepo, result: SyncResult | None = None) -> SyncResult:
    """Merge what others pushed here: ``synced/B`` into B, and every ``*/git-annex``.

    ``synced/B`` is deleted afterwards if it did not move; ``synced/git-annex``
    is never deleted (8.3).

    Raises:
        MergeConflict: see ``merge_ref``.
    """
    result = result if result is not None else SyncResult()
    merge_synced_branch(repo, result)
    result.annex_merged += [r.decode() for r in repo.branch.merge_refs()]
    return result


# --- steps 3 and 6: one remote ------------------------------------------------


def pull(repo: AnnexRepo, remote: Remote, result: SyncResult, merge: bool = True) -> None:
    """Fetch ``remote`` and (with ``merge``) merge its B and synced/B into ours (8.2 step 3).

    Raises:
        MergeConflict: see ``merge_ref``.
    """
    try:
        with git_access(repo, remote):
            gitops.fetch(repo.path, remote.name)
    except (GitCommandError, RemoteUnavailable) as e:
        result.errors[remote.name] = failures.error_text(e)
        return
    result.fetched.append(remote.name)
    branch = repo.current_branch()
    if branch is None or repo.bare or not merge:
        return
    for ref in (f"refs/remotes/{remote.name}/{branch}",
                f"refs/remotes/{remote.name}/synced/{branch}"):
        merge_ref(repo, ref.encode(), result)


def push(repo: AnnexRepo, remote: Remote, result: SyncResult) -> None:
    """8.2 step 6: B direct, else B:synced/B; +git-annex:synced/git-annex; git-annex.

    A paired device gets per-sender refs instead (``_push_paired``).
    """
    branch = repo.current_branch()
    b = f"refs/heads/{branch}" if branch and ref_sha(repo, f"refs/heads/{branch}") else None
    if remote.kind is RemoteKind.PAIRED:
        _push_paired(repo, remote, branch if b else None, result)
        return
    if not _needs_push(repo, remote, branch if b else None):
        return
    outcome: dict[str, bool] = {}
    try:
        if b is not None:
            outcome.update(gitops.push(repo.path, remote.name, [f"{b}:{b}"]))
        specs = [f"+{ANNEX_BRANCH}:refs/heads/synced/git-annex"]
        if b is not None and not outcome.get(b, False):
            specs.insert(0, f"{b}:refs/heads/synced/{branch}")
        outcome.update(gitops.push(repo.path, remote.name, specs))
        quiet = gitops.push(repo.path, remote.name, [f"{ANNEX_BRANCH}:{ANNEX_BRANCH}"])
        outcome.update(quiet)
    except GitCommandError as e:
        result.errors[remote.name] = failures.error_text(e)
    result.pushed[remote.name] = outcome
    if not outcome.get("refs/heads/synced/git-annex", False):
        result.errors.setdefault(remote.name, f"could not push to {remote.name}")
    elif b is not None and not (outcome.get(b) or outcome.get(f"refs/heads/synced/{branch}")):
        # The location logs went; the branch reached the remote under neither name.
        result.errors.setdefault(remote.name, f"{remote.name} refused the push of {branch}, "
                                              f"also as synced/{branch}")


def _push_paired(repo: AnnexRepo, remote: Remote, branch: str | None,
                 result: SyncResult) -> None:  # fmt: skip
    """xmpp-sync C.3: a paired device gets our refs under
    ``refs/synced/<our uuid>/<our device id>/`` -- B fast-forward, git-annex
    forced -- written by nobody else; it merges them as soon as they arrive."""
    from core.devices.remote import PairedRemote

    try:
        with git_access(repo, remote):
            device = open_remote(repo, remote)
            assert isinstance(device, PairedRemote)
            specs = device.refspecs(branch, ANNEX_BRANCH)
            device.gate_error = None
            outcome = gitops.push(repo.path, remote.name, specs)
    except (GitCommandError, RemoteUnavailable) as e:
        result.errors[remote.name] = str(e)
        return
    result.pushed[remote.name] = outcome
    if device.gate_error is not None and not any(outcome.values()):
        result.errors[remote.name] = str(device.gate_error)  # could not reach it, say why
    elif not all(outcome.values()):
        refused = ", ".join(ref for ref, ok in outcome.items() if not ok)
        result.errors[remote.name] = f"{remote.name} did not take {refused}"


def _needs_push(repo: AnnexRepo, remote: Remote, branch: str | None) -> bool:
    def tip(ref: str) -> ObjectID | None:
        return ref_sha(repo, ref)

    prefix = f"refs/remotes/{remote.name}/"
    annex = tip(ANNEX_BRANCH)
    if annex is not None and annex != tip(prefix + "synced/git-annex"):
        return True
    if branch is None:
        return False
    mine = tip(f"refs/heads/{branch}")
    return mine not in (tip(prefix + branch), tip(prefix + "synced/" + branch))


# --- the whole sequence -------------------------------------------------------


def sync(
    repo: AnnexRepo,
    remotes: Sequence[str] | None = None,
    message: str | None = None,
    content: bool = False,
    progress: Progress | None = None,
    content_sync: ContentSync | None = None,
) -> SyncResult:
    """Run ``git annex sync``'s branch steps (8.2) with the git remotes.

    ``remotes`` names the remotes to use (default: every remote without
    annex-sync=false).  ``content=True`` runs ``content_sync`` as step 5.

    Raises:
        ValueError: ``content=True`` without a ``content_sync`` hook.
        UnsupportedRepository: we must not write to this repository.
        MergeConflict: a conflict without an annexed side is left for the
            user, after the other steps ran; or one was left by an earlier sync.
    """
    if content and content_sync is None:
        raise ValueError("content=True needs a content_sync hook (the transfer code)")
    repo.require_writable()
    try:
        return _sync(repo, remotes, message, content, progress or NullProgress(), content_sync)
    finally:
        close_remotes(repo)  # sessions (a paired device's XMPP connection) end with the sync


def _sync(repo: AnnexRepo, remotes: Sequence[str] | None, message: str | None, content: bool,
          prog: Progress, content_sync: ContentSync | None) -> SyncResult:  # fmt: skip
    result = SyncResult()
    chosen = _chosen(repo, remotes, result)
    prog.start("sync", 2 + 2 * len(chosen), None)
    result.committed = commit_worktree(repo, message)
    conflict = _pull_all(repo, chosen, result, prog)
    if content and content_sync is not None:
        content_sync(repo, content_remotes(repo, remotes, chosen), prog)
        result.content_synced = True
        commit_worktree(repo, message)
        conflict = conflict or _pull_all(repo, chosen, result, prog)
    for remote in chosen:
        if remote.push and not remote.readonly:
            push(repo, remote, result)
        prog.advance(1, 0, f"push {remote.name}")
    prog.finish()
    if conflict is not None:
        raise conflict
    return result


def _pull_all(
    repo: AnnexRepo, chosen: Sequence[Remote], result: SyncResult, prog: Progress
) -> MergeConflict | None:
    """Steps 2-4; after a MergeConflict remotes are only fetched, not merged into B."""
    conflict: MergeConflict | None = None
    try:
        merge_synced_branch(repo, result)
    except MergeConflict as e:
        conflict = e
    prog.advance(1, 0, "merge synced branch")
    for remote in chosen:
        if remote.pull:
            try:
                pull(repo, remote, result, merge=conflict is None)
            except MergeConflict as e:
                conflict = e
            except RepoError as e:
                result.errors[remote.name] = failures.error_text(e)
        prog.advance(1, 0, f"pull {remote.name}")
    result.annex_merged += [r.decode() for r in repo.branch.merge_refs()]
    prog.advance(1, 0, "merge git-annex branches")
    return conflict
