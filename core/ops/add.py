"""``add``: put work-tree files into the annex (or into git, when small).

Spec: repository-format.md 3.1/3.2 (how annexed files look), 3.6 (dotfiles),
5.5 (location log), 11 (annex.largefiles precedence).

As ``git annex add`` does: a large file is hashed in place, then

* locked (default): renamed into the object store, a relative symlink left;
* unlocked (annex.addunlocked): the store gets a copy, or a hard link with
  annex.thin, and the index gets the pointer blob with the file's own stat,
  so git sees the file as clean.

Small files (annex.largefiles, dotfiles) are staged into git as they are.
Hashing runs on a thread pool (hashlib releases the GIL), placing stays on one
thread; the location logs are written under one journal lock hold, then
committed to the git-annex branch.  The new index entries collect in memory
and go into the index in one short read-modify-write under ``index.lock``
(``core.gitlock``), so entries ``git annex add`` staged meanwhile stay.  What
was placed is staged even when a later file fails or the branch commit does:
a file moved into the object store must never be left unstaged.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dulwich.ignore import IgnoreFilterManager
from dulwich.index import Index, IndexEntry, index_entry_from_stat
from dulwich.objects import Blob

from core import gitlock
from core.errors import RepoError
from core.ops.addrules import AddRules, PathRule
from core.progress import NullProgress, Progress
from core.repo.key import Key, hasher_for_backend, key_for_digest
from core.repo.pointer import format_pointer, link_target, parse_pointer
from core.repo.preferred import is_large
from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)

READ_SIZE = 4 << 20
MODE_LINK = 0o120000
MODE_FILE = 0o100644
MODE_EXEC = 0o100755


@dataclass(frozen=True)
class Added:
    path: str
    key: Key | None  # None: went to git as a small file


def hash_file(path: Path, backend: str, name: str, max_ext_len: int, max_exts: int) -> Key:
    """The key git-annex would give this file, read in streaming chunks."""
    hasher = hasher_for_backend(backend)
    size = 0
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(READ_SIZE):
            hasher.update(chunk)
            size += len(chunk)
    return key_for_digest(backend, hasher.hexdigest(), size, name, max_ext_len, max_exts)


class Adder:
    def __init__(self, repo: AnnexRepo, progress: Progress | None = None) -> None:
        if repo.bare:
            raise RepoError("cannot add files to a bare repository")
        repo.require_writable()
        self.repo = repo
        self.top = repo.path
        self.progress = progress or NullProgress()
        self.index: Index = repo.git.open_index()  # a snapshot: what needs adding
        self.staged: dict[bytes, IndexEntry] = {}
        self.blobs: list[Blob] = []  # stored together just before the index is written
        self.ignore = IgnoreFilterManager.from_repo(repo.git)
        cfg = repo.config
        state_config = repo.state.config()
        self.rules = AddRules.of(repo, state_config)
        unlocked = state_config.get("annex.addunlocked", "false")
        self.unlocked = cfg.add_unlocked or unlocked.strip().lower() == "true"

    # --- choosing files -------------------------------------------------------

    def candidates(self, paths: Iterable[str]) -> Iterator[str]:
        """Repository-relative paths of files that need adding."""
        for given in paths:
            named = Path.cwd() / given
            # a symlink is a candidate itself (say an annexed file left unstaged)
            root = named.parent.resolve() / named.name if named.is_symlink() else named.resolve()
            if not root.is_relative_to(self.top.resolve()):
                raise RepoError(f"{given}: outside the repository {self.top}")
            if root.is_file() or root.is_symlink():
                rel = root.relative_to(self.top.resolve()).as_posix()
                if self._wanted(rel, root):
                    yield rel
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                d = Path(dirpath)
                reldir = d.relative_to(self.top.resolve()).as_posix()
                dirnames[:] = sorted(
                    n for n in dirnames
                    if n != ".git" and not self._ignored(_join(reldir, n) + "/")
                )
                for n in sorted(filenames):
                    rel = _join(reldir, n)
                    if self._wanted(rel, d / n):
                        yield rel

    def _ignored(self, rel: str) -> bool:
        return bool(self.ignore.is_ignored(rel))

    def _wanted(self, rel: str, path: Path) -> bool:
        if self._ignored(rel):
            return False
        try:
            st = path.lstat()
        except FileNotFoundError:
            return False  # gone since its directory was listed (say a merge renamed it)
        if stat.S_ISLNK(st.st_mode):
            entry = _index_get(self.index, rel)
            if entry is None or entry.mode != MODE_LINK:
                return True  # staged as the link it is (an annexed one too, as git-annex does)
            return os.fsencode(os.readlink(path)) != self._blob_data(entry)
        if not stat.S_ISREG(st.st_mode):
            return False
        entry = _index_get(self.index, rel)
        if entry is None:
            return True
        fresh = index_entry_from_stat(st, entry.sha, entry.mode)
        return (fresh.mtime, fresh.size, fresh.ino) != (entry.mtime, entry.size, entry.ino)

    def is_large(self, rel: str, size: int, rule: PathRule) -> bool:
        """Dotfiles go to git unless annex.dotfiles (3.6); else annex.largefiles (11)."""
        if not self.repo.config.dotfiles and any(p.startswith(".") for p in rel.split("/")):
            return False
        if rule.largefiles is None:
            return True
        return is_large(rule.largefiles, rel, size)

    # --- adding ---------------------------------------------------------------

    def add(self, paths: Iterable[str]) -> list[Added]:
        files = list(self.candidates(paths))
        sizes = {rel: (self.top / rel).lstat().st_size for rel in files}
        self.progress.start("add", len(files), sum(sizes.values()))
        rules = self.rules.for_paths(files)
        large = [
            r for r in files
            if not (self.top / r).is_symlink() and self.is_large(r, sizes[r], rules[r])
        ]
        large_set = set(large)
        cfg = self.repo.config
        results: list[Added] = []
        workers = min(8, (os.cpu_count() or 2))
        # Nothing is moved while index.lock is held: a lock that stays would
        # otherwise leave placed files unstaged.
        gitlock.wait_until_free(Path(self.repo.git.index_path()))
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                keys = pool.map(
                    lambda rel: hash_file(
                        self.top / rel, rules[rel].backend, rel,
                        cfg.max_extension_length, cfg.max_extensions,
                    ),
                    large,
                )
                with self.repo.branch.transaction(commit="update"):
                    for rel, key in zip(large, keys, strict=True):
                        self._annex(rel, key)
                        results.append(Added(rel, key))
                        self.progress.advance(1, sizes[rel], rel)
            for rel in files:
                if rel not in large_set:
                    self._stage_git(rel)
                    results.append(Added(rel, None))
                    self.progress.advance(1, sizes[rel], rel)
        finally:
            self._write_staged()
        self.progress.finish()
        return results

    def _write_staged(self) -> None:
        """Put the collected entries into the index, read afresh under ``index.lock``."""
        if not self.staged:
            return
        gitlock.store_objects(self.repo.git, self.blobs)
        self.blobs.clear()
        with gitlock.locked_index(self.repo.git) as index:
            for name, entry in self.staged.items():
                index[name] = entry
            index.write()
        self.staged.clear()

    def _annex(self, rel: str, key: Key) -> None:
        path = self.top / rel
        if self.unlocked or self._was_unlocked(rel):
            how = "hardlink" if self.repo.config.thin else "copy"
            self.repo.objects.ingest(key, path, how)
            mode = MODE_EXEC if path.stat().st_mode & 0o111 else MODE_FILE
            self._stage(rel, format_pointer(key), path.stat(), mode)
        else:
            self.repo.objects.ingest(key, path, "move")
            target = link_target(key, rel, self.repo.config.hash_lower)
            os.symlink(target, path)
            self._stage(rel, target.encode(), path.lstat(), MODE_LINK)
        self.repo.state.set_location(key, self.repo.uuid, True)

    def _blob_data(self, entry: IndexEntry) -> bytes | None:
        blob = self.repo.git.object_store[entry.sha]
        return blob.data if isinstance(blob, Blob) else None

    def _was_unlocked(self, rel: str) -> bool:
        """A file committed unlocked stays unlocked when re-added (as git-annex does)."""
        entry = _index_get(self.index, rel)
        if entry is None or entry.mode == MODE_LINK:
            return False
        blob = self.repo.git.object_store[entry.sha]
        return isinstance(blob, Blob) and parse_pointer(blob.data) is not None

    def _stage_git(self, rel: str) -> None:
        path = self.top / rel
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            self._stage(rel, os.fsencode(os.readlink(path)), st, MODE_LINK)
        else:
            mode = MODE_EXEC if st.st_mode & 0o111 else MODE_FILE
            self._stage(rel, path.read_bytes(), st, mode)

    def _stage(self, rel: str, data: bytes, st: os.stat_result, mode: int) -> None:
        blob = Blob.from_string(data)
        self.blobs.append(blob)
        self.staged[os.fsencode(rel)] = index_entry_from_stat(st, blob.id, mode)


def _index_get(index: Index, rel: str) -> IndexEntry | None:
    """The index entry at ``rel``; None when absent or in conflict."""
    try:
        entry = index[os.fsencode(rel)]
    except KeyError:
        return None
    return entry if isinstance(entry, IndexEntry) else None


def _join(reldir: str, name: str) -> str:
    return name if reldir in ("", ".") else f"{reldir}/{name}"


def add(repo: AnnexRepo, paths: Iterable[str], progress: Progress | None = None) -> list[Added]:
    return Adder(repo, progress).add(paths)
