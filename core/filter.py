"""Clean and smudge: what git's ``annex`` filter driver returns for one file.

Spec: repository-format.md 3.2 (pointer files), 3.3 (the filter git runs),
2.1-2.4 (objects, othertmp), 5.5 (location log), 6.4 (journal), 11
(annex.largefiles).  The pkt-line wire protocol lives in ``core.filterprocess``;
this module only sees a path, an iterable of content chunks, and returns an
``Output`` to stream back.

Theory of operation
-------------------
Every input is first *spooled*: kept in memory up to ``SPOOL_MEMORY`` bytes,
beyond that in a temporary file under ``<gitdir>/annex/othertmp`` (same file
system as the object store, so storing is a rename).  git's long-running
protocol sends the whole content before it reads a reply, so the reply can
only start once the input has ended; the spool keeps memory bounded.  The
clean filter hashes while spooling, so the content is read once.

clean (git add, git status on a racy file, git stash):

1. input that is a pointer (3.2) goes back unchanged;
2. else ``should_annex`` decides, as git-annex's clean filter does: a
   dotfile (without annex.dotfiles) or annex.gitaddtoannex=false -> only if
   the index already holds a pointer for the path; else annex.largefiles
   (git config, then the file's gitattribute, then config.log:
   ``core.ops.addrules``) decides when it is set, and when it is not
   set -> again only if the index holds a pointer.  The key's backend is the
   file's ``annex.backend`` gitattribute, else annex.backend (same module).  Checked live with
   git-annex 10.20261026: with largefiles set, a formerly annexed file that
   no longer matches goes to git, and with no largefiles ``git add`` keeps
   new files in git (3.3);
3. an annexed file's spool is moved into the object store under its key
   (annex.thin: the work-tree file is hard-linked instead when it still holds
   exactly this content, and keeps its writable mode, as git-annex leaves it),
   the location log gets our UUID, and the pointer goes back.

Location log: ``AnnexState.set_location`` writes the journal (6.4 method A)
for each file; ``AnnexFilter.finish`` commits the journal once, when the
filter process or the one-shot command ends.  A commit per file would make
``git add`` of many files slow; the journal is durable and every later
command (ours or git-annex's) commits it, so nothing is lost if we are
killed in between.

Errors never lose data: any failure after the content was spooled gives the
original content back (git then stores the file in git), logged to stderr.
If even spooling failed (disk full), the output is ``FAILED`` and the adapter
tells git the filter failed; a filter that is not ``required`` makes git use
its own copy of the content (checked live with git 2.39), so the file still
goes to git intact.

A repository we must not write (spec 13.9: an adjusted branch, an old
version, a tuned layout; ``AnnexRepo.unsupported_reason``) gets no new
annexed files: clean passes everything through, smudge still works.

smudge (git checkout, git stash pop): a pointer whose object is present ->
the object's content; anything else -> the input unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dulwich.index import Index
from dulwich.objects import Blob

from core.errors import GitCommandError
from core.ops.addrules import AddRules, PathRule
from core.repo.key import Hasher, Key, hasher_for_backend, key_for_digest
from core.repo.pointer import MAX_POINTER, format_pointer, parse_pointer

if TYPE_CHECKING:
    from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)

# (annex.largefiles expression, path, size) -> large?
Matcher = Callable[[str, str, int], bool]

CHUNK = 1 << 16
SPOOL_MEMORY = 1 << 20


# --- the decision (pure) --------------------------------------------------------


@dataclass(frozen=True)
class CleanSettings:
    """The configuration the clean decision depends on (spec 3.3, 3.6, 11)."""

    largefiles: str | None = None
    dotfiles: bool = False
    gitaddtoannex: bool = True


def is_dotfile(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/") if part)


def should_annex(
    path: str,
    size: int,
    settings: CleanSettings,
    was_annexed: bool,
    matches: Matcher | None = None,
) -> bool:
    """Whether the clean filter puts this content into the annex (spec 3.3, 11)."""
    if not settings.gitaddtoannex:
        return was_annexed
    if is_dotfile(path) and not settings.dotfiles:
        return was_annexed
    if settings.largefiles is None:
        return was_annexed
    return (matches or _is_large)(settings.largefiles, path, size)


def _is_large(expression: str, path: str, size: int) -> bool:
    from core.repo.preferred import is_large

    return bool(is_large(expression, path, size))


# --- spooling -------------------------------------------------------------------


class Spool:
    """Content as it arrives: hashed, in memory up to a limit, then on disk.

    ``write`` never raises: an ``OSError`` while writing the temporary file
    is kept in ``error`` and later writes are dropped, so the caller can
    finish reading its input and report the failure.
    """

    def __init__(
        self, tmpdir: Path, hasher: Hasher | None = None, memory_limit: int = SPOOL_MEMORY
    ) -> None:
        self.tmpdir = tmpdir
        self.hasher = hasher
        self.memory_limit = memory_limit
        self.size = 0
        self.head = bytearray()  # the first MAX_POINTER + 1 bytes, to spot pointers
        self.path: Path | None = None
        self.error: OSError | None = None
        self._buf = bytearray()
        self._fd = -1

    def write(self, data: bytes) -> None:
        if self.error is not None or not data:
            return
        if self.hasher is not None:
            self.hasher.update(data)
        if len(self.head) <= MAX_POINTER:
            self.head += data[: MAX_POINTER + 1 - len(self.head)]
        self.size += len(data)
        try:
            if self.path is None and len(self._buf) + len(data) <= self.memory_limit:
                self._buf += data
                return
            if self.path is None:
                self._open_file()
            _write_all(self._fd, data)
        except OSError as e:
            logger.error("cannot spool content to %s: %s", self.tmpdir, e)
            self.error = e
            self.discard()

    def _open_file(self) -> None:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmpdir, prefix="filter.")
        self._fd, self.path = fd, Path(name)
        _write_all(fd, bytes(self._buf))
        self._buf = bytearray()

    @property
    def in_memory(self) -> bool:
        return self.path is None

    def hexdigest(self) -> str:
        assert self.hasher is not None
        return self.hasher.hexdigest()

    def pointer_key(self) -> Key | None:
        """The key if the whole content is a pointer (3.2), else None."""
        if self.size > MAX_POINTER:
            return None
        return parse_pointer(bytes(self.head))

    def to_file(self) -> Path:
        """Flush to a closed, synced temporary file and return its path."""
        if self.path is None:
            self._open_file()
        assert self.path is not None
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
        return self.path

    def relocated(self, path: Path) -> None:
        """The spool file was moved (into the object store): read it there."""
        self.path = path

    def chunks(self) -> Iterator[bytes]:
        if self.path is None:
            view = memoryview(self._buf)
            for i in range(0, len(view), CHUNK):
                yield bytes(view[i : i + CHUNK])
            return
        with open(self.path, "rb") as f:
            while data := f.read(CHUNK):
                yield data

    def discard(self) -> None:
        """Close and delete the temporary file, if any (never an object)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if self.path is not None and self.path.parent == self.tmpdir:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.path = None
        self._buf = bytearray()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# --- what goes back to git --------------------------------------------------------


class Outcome(enum.Enum):
    ORIGINAL = "original"  # the input, unchanged
    POINTER = "pointer"  # clean: the file was annexed
    OBJECT = "object"  # smudge: the annexed content
    FAILED = "failed"  # the input could not be kept; git must use its own copy


@dataclass
class Output:
    outcome: Outcome
    pointer: bytes = b""
    spool: Spool | None = None
    content: BinaryIO | None = None

    def chunks(self) -> Iterator[bytes]:
        if self.outcome is Outcome.POINTER:
            yield self.pointer
        elif self.outcome is Outcome.ORIGINAL and self.spool is not None:
            yield from self.spool.chunks()
        elif self.outcome is Outcome.OBJECT and self.content is not None:
            while data := self.content.read(CHUNK):
                yield data

    def close(self) -> None:
        if self.spool is not None:
            self.spool.discard()
        if self.content is not None:
            self.content.close()


# --- the filter over a repository ---------------------------------------------------


class AnnexFilter:
    """Clean and smudge for one repository; one instance per filter process."""

    def __init__(self, repo: AnnexRepo, settings: CleanSettings | None = None) -> None:
        self.repo = repo
        self.tmpdir = repo.gitdir / "annex" / "othertmp"
        self.settings = settings or read_clean_settings(repo)
        # settings.largefiles is git config's, else config.log's: git config still
        # comes first, and the file's attribute before config.log (spec 11)
        self.rules = AddRules.of(repo, {"annex.largefiles": self.settings.largefiles or ""})
        self._index: tuple[tuple[str, int, int], Index] | None = None
        self._recorded = False
        self._unsupported: str | None = None
        try:
            self._unsupported = repo.unsupported_reason()
        except Exception as e:  # noqa: BLE001 - cannot tell: do not write
            self._unsupported = str(e)
        if self._unsupported:
            logger.warning("not annexing files here: %s", self._unsupported)

    # --- clean ----------------------------------------------------------------------

    def clean(self, path: str, source: Iterable[bytes]) -> Output:
        """What git stores for ``path`` given its work-tree content.

        Never raises for repository trouble: failures give the input back.
        """
        rule = self._rule(path)
        hasher = self._hasher(rule.backend)
        spool = Spool(self.tmpdir, hasher)
        for data in source:
            spool.write(data)
        if spool.error is not None:
            return Output(Outcome.FAILED)
        if spool.pointer_key() is not None or hasher is None or self._unsupported:
            return Output(Outcome.ORIGINAL, spool=spool)
        try:
            settings = dataclasses.replace(self.settings, largefiles=rule.largefiles)
            if not should_annex(path, spool.size, settings, self.was_annexed(path)):
                return Output(Outcome.ORIGINAL, spool=spool)
            cfg = self.repo.config
            key = key_for_digest(
                rule.backend, spool.hexdigest(), spool.size, path,
                cfg.max_extension_length, cfg.max_extensions,
            )
            self._store(key, path, spool)
            self.repo.state.set_location(key, self.repo.uuid, True)
            self._recorded = True
        except Exception:  # noqa: BLE001 - any failure keeps the file in git
            logger.exception("%s: could not annex; keeping it in git", path)
            return Output(Outcome.ORIGINAL, spool=spool)
        spool.discard()
        logger.info("%s: annexed as %s", path, key)
        return Output(Outcome.POINTER, pointer=format_pointer(key))

    def _rule(self, path: str) -> PathRule:
        """This file's largefiles and backend; its attributes unread if git cannot answer."""
        try:
            return self.rules.for_paths([path])[path]
        except GitCommandError as e:
            logger.warning("%s: cannot read gitattributes (%s)", path, e)
            return self.rules.rule({})

    def _hasher(self, backend: str) -> Hasher | None:
        try:
            return hasher_for_backend(backend)
        except Exception as e:  # noqa: BLE001 - e.g. WORM: cannot annex from a stream
            logger.warning("annex.backend %s: %s; files stay in git", backend, e)
            return None

    def _store(self, key: Key, path: str, spool: Spool) -> None:
        """Put the spooled content under ``key`` (2.4), hard-linked with annex.thin."""
        store = self.repo.objects
        if self.repo.config.thin and self._link_thin(key, path, spool):
            return
        if store.has(key):
            return
        tmp = spool.to_file()
        placed = store.ingest(key, tmp, "move")
        spool.relocated(placed)

    def _link_thin(self, key: Key, path: str, spool: Spool) -> bool:
        """Hard-link the work-tree file if it still holds exactly this content."""
        work = self.repo.path / path
        try:
            before = work.lstat()
            if not stat.S_ISREG(before.st_mode) or before.st_size != spool.size:
                return False
            if _file_digest(work, key.backend) != spool.hexdigest():
                return False
            if _changed(before, work.lstat()):
                return False
            placed = self.repo.objects.ingest(key, work, "hardlink")
            if os.stat(placed).st_ino == before.st_ino:
                # ingest froze the inode to 0444; the user's file stays writable,
                # as with git-annex's annex.thin.
                os.chmod(placed, stat.S_IMODE(before.st_mode))
            return True
        except OSError as e:
            logger.info("%s: annex.thin hard link not possible (%s); copying", path, e)
            return False

    # --- the index ------------------------------------------------------------------

    def was_annexed(self, path: str) -> bool:
        """Whether the index holds a pointer blob for ``path`` (3.2)."""
        index = self._read_index()
        if index is None:
            return False
        try:
            entry = index[path.encode("utf-8", "surrogateescape")]
            sha = getattr(entry, "sha", None)
            if sha is None or getattr(entry, "mode", 0) == 0o120000:
                return False
            blob = self.repo.git.object_store[sha]
        except KeyError:
            return False
        return isinstance(blob, Blob) and parse_pointer(blob.data) is not None

    def _index_path(self) -> Path:
        env = os.environ.get("GIT_INDEX_FILE")
        if env and Path(env).is_file():
            return Path(env)
        return self.repo.gitdir / "index"

    def _read_index(self) -> Index | None:
        p = self._index_path()
        try:
            st = p.stat()
            ident = (str(p), st.st_mtime_ns, st.st_size)
            if self._index is None or self._index[0] != ident:
                self._index = (ident, Index(str(p)))
            return self._index[1]
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - an unreadable index: treat as not annexed
            logger.warning("cannot read the git index %s", p, exc_info=True)
            return None

    # --- smudge ---------------------------------------------------------------------

    def smudge(self, path: str, source: Iterable[bytes]) -> Output:
        """What git writes to the work tree for ``path`` given its blob."""
        spool = Spool(self.tmpdir)
        for data in source:
            spool.write(data)
        if spool.error is not None:
            return Output(Outcome.FAILED)
        key = spool.pointer_key()
        if key is None:
            return Output(Outcome.ORIGINAL, spool=spool)
        try:
            found = self.repo.objects.find(key)
            # An open descriptor keeps the content readable even if it is dropped now.
            content = found.open("rb") if found is not None else None
        except OSError as e:
            logger.warning("%s: cannot read the content of %s: %s", path, key, e)
            content = None
        if content is None:
            return Output(Outcome.ORIGINAL, spool=spool)
        spool.discard()
        return Output(Outcome.OBJECT, content=content)

    # --- the end --------------------------------------------------------------------

    def finish(self) -> None:
        """Commit the location logs recorded by clean (6.4 B); errors are logged only."""
        if not self._recorded:
            return
        try:
            if self.repo.branch.commit_or_keep("update"):
                self._recorded = False
        except Exception:  # noqa: BLE001 - the journal keeps the change for later
            logger.warning("could not commit the git-annex branch; the journal keeps it",
                           exc_info=True)


def read_clean_settings(repo: AnnexRepo) -> CleanSettings:
    """annex.largefiles from git config, else config.log (spec 11)."""
    largefiles = repo.config.largefiles
    if largefiles is None:
        try:
            largefiles = repo.state.config().get("annex.largefiles")
        except Exception:  # noqa: BLE001 - an unreadable branch must not break git add
            logger.warning("cannot read config.log", exc_info=True)
    stack = repo.git.get_config_stack()
    try:
        raw = stack.get(b"annex", b"gitaddtoannex")
        gitaddtoannex = raw.decode().strip().lower() not in ("false", "no", "off", "0")
    except KeyError:
        gitaddtoannex = True
    return CleanSettings(largefiles or None, repo.config.dotfiles, gitaddtoannex)


def _file_digest(path: Path, backend: str) -> str:
    hasher = hasher_for_backend(backend)
    with path.open("rb", buffering=0) as f:
        while data := f.read(CHUNK * 16):
            hasher.update(data)
    return hasher.hexdigest()


def _changed(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_ino, a.st_size, a.st_mtime_ns) != (b.st_ino, b.st_size, b.st_mtime_ns)
