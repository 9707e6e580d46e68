"""The git-annex branch over dulwich: journal, commits, union merges.

Spec: repository-format.md 4.2 (creation), 6.1 (journal), 6.4 (the commit
rule), 7.1-7.4 (merging), 13.9 (what we refuse to write).

Theory of operation
-------------------
A branch file is read from the journal (``<gitdir>/annex/journal/``) when a
journal file exists, else from ``refs/heads/git-annex`` (6.1).  Every change
happens in a *transaction* holding an exclusive POSIX ``fcntl`` lock on
``<gitdir>/annex/journal.lck`` -- the lock git-annex takes -- so a
read-modify-write never interleaves with git-annex's.  Changes collect in
memory; when the transaction ends they either go to journal files (written
to ``othertmp/`` then renamed, method A of 6.4), or, when the transaction was
opened with ``commit=...``, straight into a branch commit (method B) without
touching the journal at all: that is what makes adding many files cheap.

Committing (method B of 6.4), always under the lock: tree = tip tree + every
journal file + our pending changes, parent = tip, ref moved with
compare-and-swap, then exactly the journal files staged are deleted.  There is
no other way in this module to move ``refs/heads/git-annex``: committing
behind the journal's back loses lines (6.4, pitfall 1).

Merging (7.1, 7.2): every ref whose last component is ``git-annex`` and which
is not already contained in the tip is union-merged, after the journal is
committed (git-annex stages its journal before merging, for the same reason).

Locks: ``fcntl`` locks belong to the process and vanish when any descriptor of
the file is closed, and they do not exclude threads.  So one ``_JournalLock``
per lock file per process, with a thread lock and a depth count; a nested
transaction in the same thread joins the outer one.

No hooks run: commits are built as objects and the ref is set directly.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from dulwich.graph import can_fast_forward
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from core import gitlock
from core.errors import DiskFull, GitLockHeld, UnsupportedRepository
from core.repo.dirs import annex_dirs
from core.repo.identity import commit_identity
from core.repo.logs import union_blob
from core.repo.objects import disk_full_as_error

logger = logging.getLogger(__name__)

BRANCH = Ref(b"refs/heads/git-annex")
ORIGIN_BRANCH = Ref(b"refs/remotes/origin/git-annex")
EMPTY_TREE = ObjectID(b"4b825dc642cb6eb9a060e54bf8d69288fbee4904")
FILE_MODE = 0o100644
DIR_MODE = 0o040000
CACHE_LIMIT = 4096  # trees and commit->tree entries kept in memory per branch
# A root tree of a big branch has thousands of entries, and every commit makes
# a new one: the cache is bounded by entries too (a few hundred bytes each).
TREE_ENTRIES_LIMIT = 20_000
# Blobs read (location logs, mostly a few hundred bytes): a get reads a key's
# log when choosing its sources and again when logging it here.  By sha, so
# never stale; bounded by bytes, and big blobs are not kept.
BLOB_CACHE_BYTES = 4 << 20
BLOB_CACHE_MAX = 64 << 10  # a blob bigger than this is read from git each time

Change = Callable[[bytes | None], bytes | None]


# --- journal file names (6.1) -------------------------------------------------


def journal_name(path: str) -> str:
    """``e7d/d01/K.log`` -> ``e7d_d01_K.log``; ``_`` is doubled first."""
    return path.replace("_", "__").replace("/", "_")


def journal_path(name: str) -> str:
    """Reverse of ``journal_name``: ``__`` -> ``_``, a single ``_`` -> ``/``.

    Read greedily; a path component starting with ``_`` does not survive the
    round trip (no branch path has one).
    """
    return "_".join(part.replace("_", "/") for part in name.split("__"))


def complete_lines(data: bytes) -> bytes:
    """Drop an incomplete last line (a journal file being written, 6.1)."""
    if not data or data.endswith(b"\n"):
        return data
    return data[: data.rfind(b"\n") + 1]


# --- the journal lock ---------------------------------------------------------


class _JournalLock:
    """One per lock file per process: thread lock + fcntl lock + depth."""

    _registry: ClassVar[dict[str, _JournalLock]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd = -1

    @classmethod
    def for_path(cls, path: Path) -> _JournalLock:
        key = os.path.abspath(path)
        with cls._registry_lock:
            return cls._registry.setdefault(key, cls(path))

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.thread_lock:
            if self.depth == 0:
                annex_dirs(self.path.parent)
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.lockf(self.fd, fcntl.LOCK_EX)
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
                if self.depth == 0:
                    os.close(self.fd)  # closing releases the fcntl lock
                    self.fd = -1


# --- transactions -------------------------------------------------------------


@dataclass
class Transaction:
    """Changes made under one hold of the journal lock; see ``AnnexBranch.transaction``."""

    branch: AnnexBranch
    commit_message: str | None
    base: ObjectID | None  # the tip our reads of the branch saw
    pending: dict[str, bytes] = field(default_factory=dict)

    def read(self, path: str) -> bytes | None:
        if path in self.pending:
            return self.pending[path]
        return self.branch._read_unlocked(path)


    def change(self, path: str, fn: Change, immediately: bool = False) -> None:
        """Apply ``fn`` to the current content; ``fn`` returning None changes nothing.

        ``immediately`` writes the result to the journal now instead of when
        the transaction ends, so a caller learns here whether it was recorded.

        Raises:
            DiskFull: (``immediately``) the journal file could not be written;
                the change was not made.
        """
        new = fn(self.read(path))
        if new is None:
            return
        if immediately:
            self.branch._write_journal({path: new})
            self.pending.pop(path, None)  # the journal file holds it now
        else:
            self.pending[path] = new


# --- the branch ---------------------------------------------------------------


class AnnexBranch:
    def __init__(self, repo: Repo, gitdir: Path) -> None:
        self.repo = repo
        self.gitdir = Path(gitdir)
        self.annexdir = self.gitdir / "annex"
        self.journal_dir = self.annexdir / "journal"
        self._lock = _JournalLock.for_path(self.annexdir / "journal.lck")
        self._local = threading.local()
        self._tree_cache: dict[ObjectID, Tree] = {}
        self._tree_entries = 0  # entries of the cached trees: what their memory grows with
        self._commit_trees: dict[ObjectID, ObjectID] = {}
        self._blobs: dict[ObjectID, bytes] = {}
        self._blob_bytes = 0

    # --- reading --------------------------------------------------------------

    def tip(self) -> ObjectID | None:
        try:
            return ObjectID(bytes(self.repo.refs[BRANCH]))
        except KeyError:
            return None

    def read(self, path: str) -> bytes | None:
        """Journal file if present (complete lines only), else the branch blob (6.1)."""
        tx = self._current()
        if tx is not None:
            return tx.read(path)
        return self._read_unlocked(path)

    def _read_unlocked(self, path: str) -> bytes | None:
        try:
            with open(self.journal_dir / journal_name(path), "rb") as f:
                return complete_lines(f.read())
        except FileNotFoundError:
            pass
        tx = self._current()
        tip = tx.base if tx is not None else self.tip()
        if tip is None:
            return None
        return self.read_tree_file(self._commit_tree(tip), path)

    def read_tree_file(self, tree_id: ObjectID, path: str) -> bytes | None:
        """The blob at ``path`` in a tree, or None."""
        sha = tree_id
        for part in path.encode().split(b"/"):
            tree = self._tree(sha)
            if tree is None or part not in tree:
                return None
            _mode, sha = tree[part]
        return self._blob(sha)

    def _blob(self, sha: ObjectID) -> bytes | None:
        data = self._blobs.get(sha)
        if data is not None:
            return data
        obj = self.repo.object_store[sha]
        if not isinstance(obj, Blob):
            return None
        data = obj.data
        if len(data) > min(BLOB_CACHE_MAX, BLOB_CACHE_BYTES):
            return data
        if self._blob_bytes + len(data) > BLOB_CACHE_BYTES:
            self._blobs.clear()
            self._blob_bytes = 0
        self._blobs[sha] = data
        self._blob_bytes += len(data)
        return data

    def journal_files(self) -> dict[str, bytes]:
        """branch path -> content of every journal file (complete lines)."""
        out: dict[str, bytes] = {}
        try:
            names = os.listdir(self.journal_dir)
        except FileNotFoundError:
            return out
        for name in names:
            try:
                with open(self.journal_dir / name, "rb") as f:
                    out[journal_path(name)] = complete_lines(f.read())
            except (FileNotFoundError, IsADirectoryError):
                continue
        return out

    def _tree(self, sha: ObjectID) -> Tree | None:
        tree = self._tree_cache.get(sha)
        if tree is None:
            obj = self.repo.object_store[sha]
            if not isinstance(obj, Tree):
                return None
            tree = self._cache_tree(sha, obj)
        return tree

    def _cache_tree(self, sha: ObjectID, tree: Tree) -> Tree:
        if len(self._tree_cache) > CACHE_LIMIT or self._tree_entries > TREE_ENTRIES_LIMIT:
            self._tree_cache.clear()  # a long-running server commits forever
            self._tree_entries = 0
        if sha not in self._tree_cache:
            self._tree_entries += len(tree)
        self._tree_cache[sha] = tree
        return tree

    def _commit_tree(self, commit_id: ObjectID) -> ObjectID:
        tree = self._commit_trees.get(commit_id)
        if tree is None:
            obj = self.repo.object_store[commit_id]
            assert isinstance(obj, Commit)
            if len(self._commit_trees) > CACHE_LIMIT:  # one per commit: bound it
                self._commit_trees.clear()
            tree = self._commit_trees[commit_id] = ObjectID(bytes(obj.tree))
        return tree

    # --- changing -------------------------------------------------------------

    def _current(self) -> Transaction | None:
        tx: Transaction | None = getattr(self._local, "tx", None)
        return tx

    @contextmanager
    def transaction(self, commit: str | None = None) -> Iterator[Transaction]:
        """Hold the journal lock; batch changes; flush them once at the end.

        With ``commit=None`` the changes go to journal files (6.4 A).  With a
        message they are committed together with the journal (6.4 B) and no
        journal file is written.  On an exception, changes made so far still go
        to the journal (each is a complete fact); so do they when the commit itself
        fails (``GitLockHeld``: git-annex too keeps its journal until a commit
        succeeds).  A nested transaction in the same thread joins the outer one.
        """
        outer = self._current()
        if outer is not None:
            yield outer
            return
        with self._lock.held():
            tx = Transaction(self, commit, self.tip())
            self._local.tx = tx
            try:
                yield tx
            except BaseException:
                self._write_journal(tx.pending)
                raise
            finally:
                self._local.tx = None
            if commit is None:
                self._write_journal(tx.pending)
                return
            try:
                self._commit_locked(commit, tx.pending, tx.base)
            except BaseException:
                self._write_journal(tx.pending)  # the facts stay, committed next time
                raise


    def journal(self, commit: str | None = None) -> AbstractContextManager[Transaction]:
        """Same as ``transaction`` (the name core.ops uses)."""
        return self.transaction(commit)

    def change(self, path: str, fn: Change, immediately: bool = False) -> None:
        """Read journal-or-branch, apply ``fn`` (None = no change), write the journal
        (at once with ``immediately``: see ``Transaction.change``)."""
        with self.transaction() as tx:
            tx.change(path, fn, immediately)

    def change_many(self, changes: dict[str, Change], commit: str | None = None) -> None:
        with self.transaction(commit) as tx:
            for path, fn in changes.items():
                tx.change(path, fn)

    def _write_journal(self, pending: dict[str, bytes]) -> None:
        if not pending:
            return
        tmpdir = self.annexdir / "othertmp"
        annex_dirs(tmpdir)
        annex_dirs(self.journal_dir)
        for path, data in pending.items():
            fd, tmp = tempfile.mkstemp(dir=tmpdir, prefix="journal.")
            try:
                with disk_full_as_error(self.journal_dir), os.fdopen(fd, "wb") as f:
                    f.write(data)
            except BaseException:
                os.unlink(tmp)
                raise
            os.replace(tmp, self.journal_dir / journal_name(path))

    # --- committing (6.4 B) ---------------------------------------------------

    def commit(self, message: str = "update", *, pack: bool = False) -> ObjectID | None:
        """Commit every journal file; return the new commit, or None if nothing changed.

        Loose objects unless ``pack``: servers call this about once a second
        for as long as they run, and every pack dulwich writes stays open (two
        descriptors) in its pack cache, so packs there would grow the
        descriptor count with every commit.  git-annex also writes its journal
        commits as loose objects and leaves packing to ``git gc``.  A command
        that ends after one commit of many lines (``get`` of 1,000 files: two
        thousand objects) passes ``pack=True``: above ``gitlock.PACK_THRESHOLD``
        objects they go into one pack, not a file, lock and rename each.

        Raises:
            DiskFull: no room for the new objects; the journal is left as it was.
            GitLockHeld: ``refs/heads/git-annex.lock`` stayed held; the journal
                keeps every line.
        """
        with self._lock.held():
            return self._commit_locked(message, {}, pack=pack)

    def commit_or_keep(self, message: str = "update", wait: float = 1.0) -> bool:
        """``commit``, but a held branch lock or a full disk only leaves the lines in the journal.

        For callers whose real work is done (content stored or removed): the
        location log line is safe in the journal (6.1) and the next commit,
        ours or git-annex's, takes it.  Returns whether the commit happened.
        """
        try:
            with self._lock.held():
                self._commit_locked(message, {}, wait=wait, pack=False)
        except (GitLockHeld, DiskFull) as e:
            logger.warning("the git-annex branch was not committed, the journal keeps "
                           "the change: %s", e)
            return False
        return True

    def _commit_locked(
        self, message: str, extra: dict[str, bytes], base: ObjectID | None = None,
        wait: float | None = None, *, pack: bool = True,
    ) -> ObjectID | None:  # fmt: skip
        """Commit journal + ``extra`` on ``base`` (default: the tip); a moved tip is merged."""
        journal = self.journal_files()
        files = {**journal, **extra}
        tip = base or self.tip()
        if tip is None:
            tip = self._create_locked()
        base = self._commit_tree(tip)
        objects: list[ShaFile] = []
        tree = self._build_tree(base, files, objects)
        new: ObjectID | None = None
        if tree != base:
            new = self._make_commit(tree, [tip], message, objects)
            with disk_full_as_error(self.gitdir):  # the journal stays for the next commit
                self._add_objects(objects, pack=pack)
                self._move_ref(tip, new, message, wait, pack=pack)
        for path in journal:
            with _ignore_missing():
                os.unlink(self.journal_dir / journal_name(path))
        return new

    def _set_ref(self, old: ObjectID | None, new: ObjectID, wait: float | None = None) -> bool:
        """Compare-and-swap under git's ref lock, waited for (``core.gitlock``)."""
        return gitlock.retrying(lambda: self.repo.refs.set_if_equals(BRANCH, old, new), wait)

    def _move_ref(
        self, old: ObjectID, new: ObjectID, message: str, wait: float | None = None,
        *, pack: bool = True,
    ) -> None:  # fmt: skip
        """Compare-and-swap; if the branch moved, union-merge our commit into it."""
        while not self._set_ref(old, new, wait):
            moved = self.tip()
            assert moved is not None
            logger.info("git-annex branch moved during commit; merging")
            objects: list[ShaFile] = []
            tree = self._union_trees(self._commit_tree(moved), self._commit_tree(new), objects)
            text = f"{message} (recovery from race)"
            new = self._make_commit(tree, [moved, new], text, objects)
            self._add_objects(objects, pack=pack)
            old = moved

    # --- trees, commits, objects ----------------------------------------------

    def _build_tree(
        self, base: ObjectID | None, files: dict[str, bytes], out: list[ShaFile]
    ) -> ObjectID:
        """``base`` with every path in ``files`` replaced; new objects go to ``out``."""
        nested: dict[bytes, dict[str, bytes]] = {}
        leaves: dict[bytes, bytes] = {}
        for path, data in files.items():
            head, sep, rest = path.partition("/")
            if sep:
                nested.setdefault(head.encode(), {})[rest] = data
            else:
                leaves[head.encode()] = data
        old = self._tree(base) if base else None
        tree = Tree()
        if old is not None:
            for entry in old.iteritems():
                tree.add(entry.path, entry.mode, entry.sha)
        for name, data in leaves.items():
            blob = Blob.from_string(data)
            out.append(blob)
            tree.add(name, FILE_MODE, blob.id)
        for name, sub in nested.items():
            sub_base = tree[name][1] if name in tree and tree[name][0] == DIR_MODE else None
            tree.add(name, DIR_MODE, self._build_tree(sub_base, sub, out))
        return self._keep(tree, out)

    def _keep(self, tree: Tree, out: list[ShaFile]) -> ObjectID:
        sha = ObjectID(bytes(tree.id))
        self._cache_tree(sha, tree)
        out.append(tree)
        return sha

    def _union_trees(
        self, local: ObjectID, incoming: ObjectID, out: list[ShaFile]
    ) -> ObjectID:
        """7.2 applied path by path; merges never delete."""
        if local == incoming:
            return local
        a, b = self._tree(local), self._tree(incoming)
        assert a is not None and b is not None
        tree = Tree()
        for entry in a.iteritems():
            tree.add(entry.path, entry.mode, entry.sha)
        for entry in b.iteritems():
            if entry.path not in a:
                tree.add(entry.path, entry.mode, entry.sha)
                continue
            mode, sha = a[entry.path]
            if sha == entry.sha:
                continue
            tree.add(entry.path, mode, self._union_entry(mode, sha, entry.mode, entry.sha, out))
        if tree.id == local:
            return local
        return self._keep(tree, out)

    def _union_entry(
        self, mode: int, sha: ObjectID, in_mode: int, in_sha: ObjectID, out: list[ShaFile]
    ) -> ObjectID:
        if mode == DIR_MODE and in_mode == DIR_MODE:
            return self._union_trees(sha, in_sha, out)
        if mode == DIR_MODE or in_mode == DIR_MODE:
            return sha  # a file against a directory: keep ours, nothing to union
        local = self.repo.object_store[sha]
        incoming = self.repo.object_store[in_sha]
        assert isinstance(local, Blob) and isinstance(incoming, Blob)
        local_data, incoming_data = local.data, incoming.data
        merged = union_blob(local_data, incoming_data)
        if merged is incoming_data:
            return in_sha
        if merged is local_data:
            return sha
        blob = Blob.from_string(merged)
        out.append(blob)
        return ObjectID(bytes(blob.id))

    def _make_commit(
        self, tree: ObjectID, parents: list[ObjectID], message: str, out: list[ShaFile]
    ) -> ObjectID:
        ident = commit_identity(self.repo.get_config_stack(), "COMMITTER")
        now = int(time.time())
        tz = time.localtime(now).tm_gmtoff
        c = Commit()
        c.tree = tree
        c.parents = parents
        c.author = c.committer = ident
        c.author_time = c.commit_time = now
        c.author_timezone = c.commit_timezone = tz
        c.encoding = None
        c.message = message.encode() + b"\n"
        out.append(c)
        return ObjectID(bytes(c.id))

    def _add_objects(self, objects: list[ShaFile], *, pack: bool = True) -> None:
        gitlock.store_objects(self.repo, objects, pack=pack)

    # --- creation (4.2) -------------------------------------------------------

    def create(self) -> ObjectID:
        """Make refs/heads/git-annex if missing: from origin's, else a root commit."""
        with self._lock.held():
            tip = self.tip()
            return tip if tip is not None else self._create_locked()

    def _create_locked(self) -> ObjectID:
        try:
            origin: ObjectID | None = ObjectID(bytes(self.repo.refs[ORIGIN_BRANCH]))
        except KeyError:
            origin = None
        if origin is not None:
            new = origin
        else:
            objects: list[ShaFile] = [Tree()]
            new = self._make_commit(EMPTY_TREE, [], "branch created", objects)
            self._add_objects(objects)
        if not self._set_ref(None, new):
            tip = self.tip()
            assert tip is not None
            return tip
        return new

    # --- merging (7.1-7.4) ----------------------------------------------------

    def merge_refs(self) -> list[bytes]:
        """Union-merge every ``*/git-annex`` ref not yet in the tip; return their names.

        Raises:
            UnsupportedRepository: an incoming ref's transitions.log or
                difference.log differs from ours (7.4).
        """
        with self._lock.held():
            candidates = self._unmerged_refs()
            if not candidates:
                return []
            if self.journal_files():
                self._commit_locked("update", {})
            tip = self.tip()
            if tip is None:
                tip = self._create_locked()
            todo = [(r, s) for r, s in candidates if not self._contains(tip, s)]
            for ref, sha in todo:
                self._check_compatible(tip, sha, ref)
            if todo:
                self._merge_into(tip, todo)
            self._record_merged(candidates)
            return [r for r, _ in todo]

    def _unmerged_refs(self) -> list[tuple[Ref, ObjectID]]:
        done = self._merged_record()
        out = []
        for ref in sorted(self.repo.refs.allkeys()):
            if ref == BRANCH or not ref.endswith(b"/git-annex"):
                continue
            try:
                sha = ObjectID(bytes(self.repo.refs[ref]))
            except KeyError:
                continue
            if (sha, ref) not in done:
                out.append((ref, sha))
        return out

    def _contains(self, tip: ObjectID, sha: ObjectID) -> bool:
        return sha == tip or bool(can_fast_forward(self.repo, sha, tip))

    def _check_compatible(self, tip: ObjectID, sha: ObjectID, ref: bytes) -> None:
        mine, theirs = self._commit_tree(tip), self._commit_tree(sha)
        for name in ("transitions.log", "difference.log"):
            if self.read_tree_file(mine, name) != self.read_tree_file(theirs, name):
                raise UnsupportedRepository(
                    self.gitdir,
                    f"{ref.decode(errors='replace')} has a different {name}; "
                    "run `git annex sync` with git-annex to merge it",
                )

    def _merge_into(self, tip: ObjectID, todo: list[tuple[Ref, ObjectID]]) -> None:
        shas = list(dict.fromkeys(s for _, s in todo))
        if len(shas) == 1 and self._contains(shas[0], tip):
            if self._set_ref(tip, shas[0]):
                return
        objects: list[ShaFile] = []
        tree = self._commit_tree(tip)
        for sha in shas:
            tree = self._union_trees(tree, self._commit_tree(sha), objects)
        names = " ".join(_short_ref(r) for r, _ in todo)
        message = f"merging {names} into git-annex"
        new = self._make_commit(tree, [tip, *shas], message, objects)
        self._add_objects(objects)
        self._move_ref(tip, new, message)

    def _merged_record(self) -> set[tuple[bytes, bytes]]:
        try:
            data = (self.annexdir / "mergedrefs").read_bytes()
        except FileNotFoundError:
            return set()
        out = set()
        for line in data.splitlines():
            sha, tab, ref = line.partition(b"\t")
            if tab:
                out.add((sha, ref))
        return out

    def _record_merged(self, refs: list[tuple[Ref, ObjectID]]) -> None:
        """Add to ``mergedrefs`` (git-annex's ``SHA<TAB>REF`` format, 6.2)."""
        lines = {f"{s.decode()}\t{r.decode()}" for s, r in self._merged_record()}
        lines |= {f"{s.decode()}\t{r.decode()}" for r, s in refs}
        tmpdir = self.annexdir / "othertmp"
        annex_dirs(tmpdir)
        fd, tmp = tempfile.mkstemp(dir=tmpdir, prefix="mergedrefs.")
        with os.fdopen(fd, "w") as f:
            f.write("".join(line + "\n" for line in sorted(lines)))
        os.replace(tmp, self.annexdir / "mergedrefs")

    # --- refusing to write (6.1, 13.9) ----------------------------------------

    def unsupported_reason(self) -> str | None:
        """Why our writes could damage this repository (6.1, 7.4, 13.9), or None."""
        for name in ("difference.log", "transitions.log"):
            if self.read(name):
                return f"the git-annex branch has {name}, which we do not support yet"
        config = self.repo.get_config()
        if _config_true(config, (b"annex",), b"private"):
            return "annex.private is set, which we do not support yet"
        for section in config.sections():
            if section[:1] == (b"remote",) and _config_true(config, section, b"annex-private"):
                name = b".".join(section[1:]).decode(errors="replace")
                return f"remote.{name}.annex-private is set, which we do not support yet"
        return None

    def check_writable(self) -> None:
        """Raises UnsupportedRepository when ``unsupported_reason`` gives a reason."""
        reason = self.unsupported_reason()
        if reason is not None:
            raise UnsupportedRepository(self.gitdir, reason)


def _short_ref(ref: bytes) -> str:
    text = ref.decode(errors="replace")
    for prefix in ("refs/heads/", "refs/remotes/", "refs/"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _config_true(config: object, section: tuple[bytes, ...], name: bytes) -> bool:
    try:
        value = config.get(section, name)  # type: ignore[attr-defined]
    except KeyError:
        return False
    return isinstance(value, bytes) and value.strip().lower() in (b"true", b"yes", b"on", b"1")


@contextmanager
def _ignore_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass
