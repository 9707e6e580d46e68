"""The daemon's blocking work: every dulwich / git / content call it makes.

Spec: assistant-behaviour.md 3 (commit, push, merge, transfer), 4 (re-check
before a transfer), 8 (single-writer fallback refs kept).

Theory of operation
-------------------
Style 2: blocking libraries stay off the event loop, in one module.  Every
function here is synchronous and is run by the daemon through
``asyncio.to_thread``.  Each opens the repository afresh (``_open``) and closes
it at the end, so no dulwich object is shared between threads and every job
sees the refs and index as they are on disk now.

Serialization: jobs that write the index or the work tree (commit, receive,
pull, push, finish_download, resolve_conflict) must run one at a time per
repository; ``core.daemon.repoworker`` holds an ``asyncio.Lock`` around them.
The content-moving half of a transfer (``run_transfer``) only touches the
object store and the journal (which has its own process-wide lock), so it runs
outside that lock, in parallel slots.

Waits are bounded inside: git runs with the subprocess timeouts of
``core.gitops``; P2P remotes time out in ``core.p2p.runtime``; transfers check
a cancel flag on every chunk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dulwich.config import ConfigFile
from dulwich.index import IndexEntry, index_entry_from_stat
from dulwich.object_store import tree_lookup_path
from dulwich.objects import Commit, ObjectID

from core import failures, gitlock, gitops
from core.errors import CoreError, GitCommandError, MergeConflict, MergeFailed, RemoteUnavailable
from core.failures import Reason
from core.ops import sync as syncops
from core.ops.add import Adder
from core.ops.conflicts import VARIANT_MARKER, original_names, version_origins
from core.ops.files import AnnexedFile, annexed_files, populate_unlocked
from core.ops.query import wanted
from core.ops.transfer import _wanted, copy_key_to, get_key
from core.proxied import nodes_of
from core.remotes import (
    RemoteInfo,
    RemoteKind,
    close_remotes,
    find_remote,
    list_remotes,
    local_path,
    open_remote,
)
from core.repo.key import Key
from core.repo.repository import AnnexRepo, init_git
from core.status import Conflict, TransferStatus

logger = logging.getLogger(__name__)

TMP_SUFFIX = ".annexsync-tmp"
CONTENT_KINDS = (RemoteKind.PATH, RemoteKind.P2P, RemoteKind.HTTP,  # kinds that move content
                 RemoteKind.PAIRED)



# --- opening ------------------------------------------------------------------


@dataclass(frozen=True)
class RepoFacts:
    path: str
    uuid: str
    description: str
    remotes: tuple[RemoteInfo, ...]
    branch: str | None
    wanted_notes: dict[str, str] = field(default_factory=dict)  # uuid -> "treated as present"
    # remotes reached through a gateway (a cluster, its nodes; clusters.md 4.1): no git side
    proxied: tuple[RemoteInfo, ...] = ()
    cluster_nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # cluster -> nodes
    gateway_of: tuple[str, ...] = ()  # clusters this repository is the gateway of (annex.cluster.*)


@contextlib.contextmanager
def _open(path: str) -> Iterator[AnnexRepo]:
    """The repository for one job; the remotes it opened close with it (a
    paired device's holds an XMPP connection)."""
    repo = AnnexRepo.open(path, auto_init=True)
    try:
        yield repo
    finally:
        close_remotes(repo)
        repo.close()


CREATING = "annexsync-creating"  # in the git dir while the daemon creates a repository


def needs_creation(path: str) -> bool:
    """No repository yet, or one whose creation was cut short (a crash)."""
    git = Path(path) / ".git"
    return not git.exists() or _half_made(git)


def _half_made(git: Path) -> bool:
    """Our marker, or what a crash right after ``git init`` leaves: no annex.uuid,
    no commit, nothing staged (treated as new, as an empty folder would be)."""
    if (git / CREATING).exists():
        return True
    try:
        uuid = ConfigFile.from_path(str(git / "config")).get((b"annex",), b"uuid")
    except KeyError:
        uuid = b""
    except OSError:
        return False
    heads = git / "refs" / "heads"
    committed = (git / "packed-refs").exists() or (heads.is_dir() and any(heads.iterdir()))
    return not uuid and not committed and not (git / "index").exists()


def prepare(path: str, create: bool, description: str | None, largefiles: str | None) -> None:
    """Open (or with ``create``, create) a repository for the daemon.

    A repository the daemon creates gets ``annex.addunlocked=true`` so the
    folder holds ordinary editable files, and the default largefiles.  A
    marker in the git dir (``CREATING``) lives from the first write to the
    last, so a daemon killed meanwhile finishes the creation when started
    again (``needs_creation``) instead of finding a half-made repository.

    Raises:
        NotARepository: not a git-annex repository and ``create`` is False.
    """
    if create:
        p = Path(path)
        marker = p / ".git" / CREATING
        if not (p / ".git").exists():
            p.mkdir(parents=True, exist_ok=True)
            init_git(p).close()
            marker.touch()
        fresh = _half_made(p / ".git")
        repo = AnnexRepo.init(p, description)
        try:
            if fresh:
                cfg = repo.git.get_config()
                cfg.set(b"annex", b"addunlocked", b"true")
                if largefiles:
                    cfg.set(b"annex", b"largefiles", largefiles.encode())
                cfg.write_to_path()
                marker.unlink(missing_ok=True)
        finally:
            repo.close()
        return
    with _open(path) as repo:
        if description is not None:
            repo.require_writable()
            repo.state.set_description(repo.uuid, description)
            repo.branch.commit()


def facts(path: str) -> RepoFacts:
    """uuid, description and remotes of a repository."""
    with _open(path) as repo:
        desc = repo.state.descriptions().get(repo.uuid, str(repo.path))
        remotes = tuple(r for r in syncops.list_remotes(repo))
        notes = {w.uuid: w.fallback_text() for w in wanted(repo) if w.fallback}
        proxied = tuple(r for r in list_remotes(repo) if r.via is not None)
        table = repo.state.clusters()
        nodes = {c.name: tuple(n.name for n in nodes_of(c, proxied, table))
                 for c in proxied if c.kind is RemoteKind.CLUSTER}  # fmt: skip
        from core.ops.clustersetup import my_clusters

        return RepoFacts(str(repo.path), repo.uuid, desc, remotes, repo.current_branch(), notes,
                         proxied, nodes, tuple(sorted(my_clusters(repo))))  # fmt: skip


def sweep_locks(path: str) -> list[str]:
    """Recover the repository's stale git locks (``core.gitlock.sweep``); those left.

    What the journal kept while a branch lock was held is committed here too,
    so it does not wait for the next change.
    """
    with _open(path) as repo:
        left = [str(p) for p in gitlock.sweep(repo.gitdir)]
        if repo.branch.journal_files() and repo.unsupported_reason() is None:
            repo.branch.commit_or_keep()
        return left


def remote_reachable(repo_path: str, info: RemoteInfo) -> bool | None:
    """A cheap reachability probe; None when only a real exchange can tell."""
    if info.kind is RemoteKind.PATH and info.url:
        p = local_path(info.url, Path(repo_path))
        return p is not None and ((p / ".git").exists() or (p / "HEAD").exists())
    return None


def classify(error: Exception) -> bool:
    """True when ``error`` means "wait for the remote" (not "it said no" or "fix me").

    The reason comes from ``core.failures`` (one table for every front end):
    a closed port, a timeout, a lost route or connection wait; a name that
    does not resolve, a refused login or a URL that is no repository do not.
    """
    if not isinstance(error, (RemoteUnavailable, GitCommandError)):
        return False
    f = failures.classify(failures.error_text(error))
    # "unavailable" in words we do not know still means: could not reach it
    return f.transient or (isinstance(error, RemoteUnavailable) and f.reason is Reason.OTHER)


# --- committing ---------------------------------------------------------------


@dataclass
class CommitOutcome:
    commit: bytes | None = None
    added_keys: list[tuple[str, Key]] = field(default_factory=list)  # annexed
    added: list[str] = field(default_factory=list)  # every path added, dotfiles (in git) too


def ignored(rel: str) -> bool:
    """Paths the committer never looks at: git's own, our temp files."""
    parts = rel.split("/")
    return ".git" in parts or parts[-1].endswith(TMP_SUFFIX)


def commit_changes(path: str, changed: Iterable[str], message: str | None) -> CommitOutcome:
    """Annex (unlocked) or stage the changed paths, then commit the work tree (3.1 steps 3-4).

    Raises:
        MergeConflict: a merge left conflicts that need the user.
        UnsupportedRepository: the repository must not be written.
    """
    out = CommitOutcome()
    with _open(path) as repo:
        top = repo.path
        targets: set[str] = set()
        for rel in changed:
            if ignored(rel):
                continue
            p = top / rel
            if p.is_symlink():
                # Adder resolves symlinks; hand it the directory instead.
                targets.add(str(p.parent))
            elif p.exists():
                targets.add(str(p))
        if targets:
            adder = Adder(repo)
            adder.unlocked = True  # the folder holds ordinary files (facade contract)
            try:
                added = adder.add(sorted(targets))
            except FileNotFoundError:
                still = sorted(t for t in targets if Path(t).exists())
                adder = Adder(repo)
                adder.unlocked = True
                added = adder.add(still)
            out.added_keys = [(a.path, a.key) for a in added if a.key is not None]
            out.added = [a.path for a in added]
        out.commit = syncops.commit_worktree(repo, message)
        repo.branch.commit()
    return out


def scan_all(path: str) -> list[str]:
    """Startup scan: every path that may need committing (untracked or changed)."""
    with _open(path) as repo:
        return list(Adder(repo).candidates([str(repo.path)]))


def count_uncommitted(path: str) -> int:
    """Untracked-or-changed files plus deleted tracked ones (read only)."""
    with _open(path) as repo:
        n = sum(1 for _ in Adder(repo).candidates([str(repo.path)]))
        index = repo.git.open_index()
        for name in index.paths():
            p = repo.path / os.fsdecode(name)
            if not p.exists() and not p.is_symlink():
                n += 1
        return n


# --- pushing, pulling, receiving (3.1 step 5, 3.3 step 1) ----------------------


@dataclass
class RemoteOutcome:
    ok: bool
    unreachable: bool = False
    error: str | None = None
    changed: bool = False  # something merged into the work tree


def _find(repo: AnnexRepo, name: str) -> RemoteInfo:
    for r in syncops.list_remotes(repo):
        if r.name == name:
            return r
    raise CoreError(f"there is no git remote named {name!r}")


def _outcome(name: str, result: syncops.SyncResult, probe: bool | None) -> RemoteOutcome:
    error = result.errors.get(name)
    if error is None:
        return RemoteOutcome(True, changed=bool(result.merged or result.resolved))
    unreachable = probe is False or failures.classify(error).transient
    return RemoteOutcome(False, unreachable, error)


def push_remote(path: str, name: str) -> RemoteOutcome:
    """Push to one remote; on refusal pull and retry, then single-writer refs (3.1 step 5).

    Raises:
        MergeFailed: git could not merge what the pull fetched.
    """
    with _open(path) as repo:
        info = _find(repo, name)
        probe = remote_reachable(path, info)
        if probe is False:
            return RemoteOutcome(False, True, f"{name}: folder not found ({info.url})")
        repo.branch.commit()
        result = syncops.SyncResult()
        syncops.push(repo, info, result)
        if name not in result.errors:
            return RemoteOutcome(True)
        first = _outcome(name, result, remote_reachable(path, info))
        if first.unreachable or info.kind is RemoteKind.PAIRED:
            return first  # a paired device takes our own refs only: nothing to fall back to
        # Refused: fetch and merge, push again (spec 3.1 step 5).
        retry = syncops.SyncResult()
        try:
            syncops.pull(repo, info, retry)
        except MergeConflict as e:
            return RemoteOutcome(False, False, str(e))
        syncops.push(repo, info, retry)
        if name not in retry.errors:
            return RemoteOutcome(True, changed=bool(retry.merged))
        return _push_single_writer(repo, info, retry.errors[name])


def _push_single_writer(repo: AnnexRepo, info: RemoteInfo, refused: str) -> RemoteOutcome:
    """Refs only we write, so they cannot conflict: refs/synced/<uuid>/... (spec 3.1 step 5).
    Refused too: the error is what the ordinary push was refused (``refused``)."""
    branch = repo.current_branch()
    specs = [f"+{syncops.ANNEX_BRANCH}:refs/synced/{repo.uuid}/git-annex"]
    if branch:
        specs.append(f"+refs/heads/{branch}:refs/synced/{repo.uuid}/{branch}")
    try:
        pushed = gitops.push(repo.path, info.name, specs)
    except GitCommandError as e:
        return RemoteOutcome(False, classify(e), failures.error_text(e))
    if all(pushed.values()):
        return RemoteOutcome(True)
    return RemoteOutcome(False, False, refused)


def pull_remote(path: str, name: str) -> RemoteOutcome:
    """Fetch one remote, merge its branches and git-annex branch (3.3 step 1).

    Raises:
        MergeConflict: a conflict the user must resolve.
        MergeFailed: git could not merge what was fetched (the remote was reached).
    """
    with _open(path) as repo:
        info = _find(repo, name)
        probe = remote_reachable(path, info)
        if probe is False:
            return RemoteOutcome(False, True, f"{name}: folder not found ({info.url})")
        result = syncops.SyncResult()
        try:
            syncops.pull(repo, info, result)
        except MergeFailed:
            raise
        except GitCommandError as e:
            return RemoteOutcome(False, classify(e), failures.error_text(e))
        result.annex_merged += [r.decode() for r in repo.branch.merge_refs()]
        return _outcome(name, result, remote_reachable(path, info))


# refs/synced/<uuid>/<branch> (our daemon's fallback push), and
# refs/synced/<uuid>/<device id>/<branch> (a paired device's push, xmpp-sync C.3)
_UUID = rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_SINGLE_WRITER = re.compile(rb"^refs/synced/[0-9a-fA-F-]+/(?:" + _UUID + rb"/)?(.+)$")


@dataclass(frozen=True)
class Received:
    merged: bool  # the work tree or the git-annex branch changed
    resolved: bool  # conflicts were resolved with variants (a new commit to push)
    annex_tip: bytes | None = None  # refs/heads/git-annex afterwards


def receive(path: str) -> Received:
    """Merge what others pushed here (synced/B, single-writer refs, */git-annex).

    Raises:
        MergeConflict: a conflict the user must resolve.
        MergeFailed: git refused the merge (local changes in the way, merge.ff=only).
    """
    with _open(path) as repo:
        result = syncops.receive(repo)
        branch = repo.current_branch()
        if branch is not None and not repo.bare:
            for ref in sorted(repo.git.refs.allkeys()):
                m = _SINGLE_WRITER.match(bytes(ref))
                if m and m.group(1).decode() == branch:
                    syncops.merge_ref(repo, bytes(ref), result)
        tip = repo.branch.tip()
        return Received(bool(result.merged or result.annex_merged), bool(result.resolved),
                        bytes(tip) if tip is not None else None)


# --- transfers (spec 4) -------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    direction: str  # "download" | "upload" | "refused" (wanted, but its hash is uncomputable)
    key: Key
    path: str
    remotes: tuple[str, ...]  # candidate remotes, cheapest first (downloads: any one)


def plan_transfers(path: str, usable: Sequence[str], only: set[str] | None = None) -> list[Planned]:
    """Downloads this repository wants and uploads each usable remote wants (spec 3.1/3.3).

    ``usable`` names the remotes that are currently reachable; ``only``
    restricts the scan to some keys (serialized).
    """
    out: list[Planned] = []
    with _open(path) as repo:
        every = list_remotes(repo)
        kinds = {r.name: r.kind for r in every}
        infos = [r for r in every if r.name in usable and r.uuid and not r.ignore
                 and kinds.get(r.via or r.name) in CONTENT_KINDS]  # proxied: the gateway's
        preferred = repo.state.preferred_content()
        seen: set[Key] = set()
        for f in annexed_files(repo):
            if f.key in seen or (only is not None and str(f.key) not in only):
                continue
            seen.add(f.key)
            out += _plan_one(repo, f, infos, preferred)
    return out


def _plan_one(repo: AnnexRepo, f: AnnexedFile, infos: list[RemoteInfo],
              preferred: dict[str, str]) -> list[Planned]:
    holders = repo.state.locations(f.key)
    if not repo.objects.has(f.key):
        if not _wanted(repo, f.key, f.path, repo.uuid, preferred.get(repo.uuid)):
            return []
        sources = tuple(i.name for i in infos if i.uuid in holders)
        if sources and not f.key.receivable:  # never queued: no byte would verify
            return [Planned("refused", f.key, f.path, sources)]
        return [Planned("download", f.key, f.path, sources)] if sources else []
    out = []
    for info in infos:
        uuid = info.uuid or ""
        if uuid in holders or info.readonly:
            continue
        if _wanted(repo, f.key, f.path, uuid, preferred.get(uuid)):
            out.append(Planned("upload", f.key, f.path, (info.name,)))
    return out


class Cancelled(Exception):  # noqa: N818 - a signal, not an error the user sees
    """Raised from a progress callback to stop a transfer (partial data is kept)."""


class TransferMeter:
    """The Progress a transfer thread reports into; checks the cancel flag per chunk."""

    def __init__(self, report: Callable[[int], None]) -> None:
        self.cancel = threading.Event()
        self.done = 0
        self._report = report

    def start(self, what: str, items: int, total_bytes: int | None) -> None:
        pass

    def advance(self, items: int = 0, nbytes: int = 0, current: str = "") -> None:
        if self.cancel.is_set():
            raise Cancelled()
        self.done += nbytes
        self._report(self.done)

    def finish(self) -> None:
        pass


def still_needed(path: str, direction: str, key: Key, fpath: str, remote: str) -> bool:
    """The re-check before a transfer starts (spec 4): missing where it goes,
    and, for an upload, still here to send."""
    with _open(path) as repo:
        return (_missing(repo, direction, key, fpath, remote)
                and (direction == "download" or repo.objects.has(key)))  # fmt: skip


def moot(path: str, transfers: Sequence[TransferStatus]) -> tuple[int, ...]:
    """The ids of the cancelled or failed ``transfers`` whose content is where it
    is wanted now (or no longer wanted there); the repository is opened once.
    Not the same as not ``still_needed``: an upload whose content is gone from
    here is not moot, the remote still lacks it.  One that cannot be judged
    (its remote gone from the config) is not moot: it stays shown."""
    out = []
    with _open(path) as repo:
        for t in transfers:
            try:
                if not _missing(repo, t.direction, Key.parse(t.key), t.path, t.remote):
                    out.append(t.id)
            except CoreError as e:
                logger.info("%s: is %s still needed? %s", path, t.path, e)
    return tuple(out)


def _missing(repo: AnnexRepo, direction: str, key: Key, fpath: str, remote: str) -> bool:
    """The content is wanted where the transfer takes it, and not there."""
    preferred = repo.state.preferred_content()
    if direction == "download":
        return not repo.objects.has(key) and _wanted(
            repo, key, fpath, repo.uuid, preferred.get(repo.uuid))
    uuid = find_remote(repo, remote).uuid or ""  # a proxied remote (a cluster) too
    return uuid not in repo.state.locations(key) and _wanted(repo, key, fpath, uuid,
                                                             preferred.get(uuid))


def run_transfer(path: str, direction: str, key: Key, remote: str, meter: TransferMeter) -> str:
    """Move the content (no index or work-tree writes).

    Raises:
        Cancelled: the meter's cancel flag was set (a download keeps its partial file).
        TransferBusy: the same content is being written there by another transfer.
        CoreError: the transfer failed.
    """
    with _open(path) as repo:
        if direction == "download":
            meter.done = repo.objects.incoming(key).offset
            note = get_key(repo, key, meter, remote)  # Incoming holds the transfer lock
        else:
            r = open_remote(repo, find_remote(repo, remote))
            try:
                note = copy_key_to(repo, key, r, meter)  # upload lock; the target's download lock
            finally:
                close = getattr(r, "close", None)
                if callable(close):
                    close()
        repo.branch.commit_or_keep()  # the content moved: the journal keeps the log line
        return note


def populate_present(path: str) -> None:
    """Fill unlocked files that show a pointer although the content is here
    (it arrived by a peer's upload, not by our download)."""
    with _open(path) as repo:
        populate_unlocked(repo, [f for f in annexed_files(repo)
                                 if not f.locked and repo.objects.has(f.key)])


def finish_download(path: str, key: Key) -> None:
    """Put arrived content into the unlocked files that show its pointer."""
    with _open(path) as repo:
        populate_unlocked(repo, [f for f in annexed_files(repo) if f.key == key])


# --- conflicts (spec 8.4 results, shown to the user) ---------------------------

HISTORY_DEPTH = 200  # commits searched for the path a variant stands for


def find_conflicts(path: str) -> dict[str, tuple[str, ...]]:
    """original path -> variant paths, for every ``.variant-`` file in the index."""
    groups: dict[str, list[str]] = {}
    with _open(path) as repo:
        index = repo.git.open_index()
        trees: list[ObjectID] | None = None
        for raw in index.paths():
            rel = raw.decode("utf-8", "surrogateescape")
            if VARIANT_MARKER in rel.rpartition("/")[2]:
                names = original_names(rel)
                if len(names) > 1:
                    trees = _recent_trees(repo) if trees is None else trees
                    names = tuple(n for n in names if _in_trees(repo, trees, n)) or names
                groups.setdefault(names[0], []).append(rel)
        if gitops.merge_in_progress(repo.gitdir):
            for rel in gitops.conflicted_paths(repo.path):
                groups.setdefault(rel, [])
    return {k: tuple(sorted(v)) for k, v in groups.items()}


def conflicts(path: str) -> tuple[Conflict, ...]:
    """The folder's conflicts as status values, each version with the device it came
    from (``version_origins``)."""
    found = find_conflicts(path)
    with _open(path) as repo:
        names = {r.uuid: r.name for r in list_remotes(repo) if r.uuid}
        return tuple(Conflict(path, p, v, version_origins(repo, v, names))
                     for p, v in sorted(found.items()))


def _recent_trees(repo: AnnexRepo) -> list[ObjectID]:
    """Trees of HEAD and its ancestors, newest first (at most ``HISTORY_DEPTH``)."""
    try:
        todo = [repo.git.head()]
    except KeyError:  # unborn
        todo = []
    seen: set[bytes] = set()
    trees: list[ObjectID] = []
    while todo and len(seen) < HISTORY_DEPTH:
        sha = todo.pop(0)
        if sha in seen:
            continue
        seen.add(sha)
        commit = repo.git[sha]
        if isinstance(commit, Commit):
            trees.append(commit.tree)
            todo.extend(commit.parents)
    return trees


def _in_trees(repo: AnnexRepo, trees: list[ObjectID], rel: str) -> bool:
    """Whether ``rel`` was a path in one of ``trees`` (a variant's original was)."""
    for tree in trees:
        try:
            tree_lookup_path(repo.git.object_store.__getitem__, tree, os.fsencode(rel))
            return True
        except KeyError:
            continue
    return False


def keep_variant(path: str, original: str, keep: str, variants: Sequence[str]) -> bytes | None:
    """The chosen variant becomes ``original`` (index entry and file); the others go.

    Works on index entries, so a variant whose content is not here yet moves
    as its pointer.  Commits the result.

    Raises:
        CoreError: ``keep`` is not a variant, or ``original`` exists again.
    """
    if keep not in variants:
        raise CoreError(f"{keep} is not a variant of {original}")
    with _open(path) as repo:
        top = repo.path
        dest = top / original
        if dest.exists() or dest.is_symlink():
            raise CoreError(f"{original} exists again; move it away before choosing a variant")
        with gitlock.locked_index(repo.git) as index:
            entry = index[os.fsencode(keep)]
            if not isinstance(entry, IndexEntry):
                raise CoreError(f"{keep} is itself in conflict; resolve it with git first")
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(top / keep, dest)
            index[os.fsencode(original)] = index_entry_from_stat(
                dest.lstat(), entry.sha, entry.mode)
            for v in variants:
                del index[os.fsencode(v)]
                if v != keep:
                    (top / v).unlink(missing_ok=True)
            gitops.settle_index(index, top, [os.fsencode(original)])
        commit = syncops.commit_worktree(repo, f"resolved conflict on {original}")
        repo.branch.commit()
        return commit
