"""git's lock files: taken as git takes them, waited for, recovered when stale.

Spec: repository-format.md 3.5 (we write the index and refs git reads); git's
lockfile protocol (``Documentation/technical/api-lockfile.txt``); git-annex's
assistant, ``Assistant/Repair.hs`` (``repairStaleGitLocks``).

Theory of operation
-------------------
git guards a file F by creating ``F.lock`` with ``O_CREAT|O_EXCL``; the new
content is written into the lock file, which is then renamed over F -- the
rename both publishes the content and releases the lock.  Whoever finds
``F.lock`` present must not touch F.  dulwich follows the protocol for refs
(``GitFile``) and raises ``FileLocked`` when it loses; git prints
``Unable to create '<F>.lock': File exists``.  This module is the one place
that deals with both:

* ``locked_index``: a read-modify-write of ``.git/index`` happens entirely
  under ``index.lock``: create it, read the index *then*, let the caller
  change it, write the new index into the lock file, rename it over the
  index.  Changes staged meanwhile by ``git annex add`` are never lost, since
  they are read under the lock.  A nested use in the same thread joins the
  outer one.
* ``retrying``: runs a dulwich ref update (or a git command, through
  ``core.gitops``) and, while the lock is held by someone else, waits with a
  bounded back-off and tries again.

Waiting is bounded by ``LockPolicy.wait``; then ``GitLockHeld`` tells the
person exactly which file to remove if no git process is running.  A lock
left by a process that died (kill -9, power loss) is never released by
anyone, so the daemon recovers it as git-annex's assistant does: a lock file
that no process has open (we look through ``/proc/*/fd`` of the processes we
may see, where git-annex runs lsof) and whose identity (inode, size, mtime)
did not change over ``LockPolicy.stale_after`` seconds is deleted.  Only the
daemon sets ``stale_after`` (the assistant uses 60 s); one-shot commands leave
the decision to the person.  Observations persist between attempts, so a job
that gave up and is retried later still sees how long the file sat unchanged.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dulwich.file import FileLocked
from dulwich.index import Index, IndexChecksumWriter, write_index_dict
from dulwich.objects import ShaFile
from dulwich.repo import Repo

from core.errors import GitLockHeld

logger = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY = 0.005
MAX_DELAY = 0.25
# Caches git rebuilds when missing; written back verbatim after our changes
# they would describe the old entries (a stale TREE would make git commit the
# old tree), so they are dropped.
CACHE_EXTENSIONS = frozenset({b"TREE", b"UNTR", b"EOIE", b"IEOT", b"FSMN"})
_GIT_LOCK_MESSAGE = re.compile(r"Unable to create '([^']+\.lock)': File exists")


@dataclass(frozen=True)
class LockPolicy:
    """How long a held lock is waited for, and when a dead owner's lock goes."""

    wait: float = 10.0
    stale_after: float | None = None  # None: never removed here (one-shot commands)


def policy_from_env(base: LockPolicy = LockPolicy()) -> LockPolicy:
    """``ANNEXSYNC_LOCK_WAIT`` / ``ANNEXSYNC_STALE_LOCK_AFTER`` override ``base`` (tests).

    The stale period only shortens a recovery ``base`` has: it never turns
    recovery on for a one-shot command.
    """
    wait = os.environ.get("ANNEXSYNC_LOCK_WAIT")
    stale = os.environ.get("ANNEXSYNC_STALE_LOCK_AFTER")
    recovering = bool(stale) and base.stale_after is not None
    return LockPolicy(
        wait=float(wait) if wait else base.wait,
        stale_after=float(stale) if stale and recovering else base.stale_after,
    )


_policy = policy_from_env()


def set_policy(policy: LockPolicy) -> None:
    """Process-wide: the daemon turns stale-lock recovery on at start."""
    global _policy
    _policy = policy


def current_policy() -> LockPolicy:
    return _policy


# --- waiting and stale locks -------------------------------------------------


_observed: dict[str, tuple[tuple[int, int, int], float]] = {}
_observed_lock = threading.Lock()


class Waiter:
    """Bounded back-off for one operation that keeps finding a lock held."""

    def __init__(self, wait: float | None = None) -> None:
        self.limit = _policy.wait if wait is None else wait
        self.started = time.monotonic()
        self.delay = FIRST_DELAY

    def wait(self, lock: Path) -> None:
        """Sleep before the next try, or recover the lock if it is stale.

        Raises:
            GitLockHeld: the lock stayed held longer than the policy allows.
        """
        if recover_if_stale(lock):
            return  # a dead process's lock just went: try again at once
        waited = time.monotonic() - self.started
        if waited >= self.limit:
            raise GitLockHeld(str(lock), waited, _policy.stale_after)
        time.sleep(min(self.delay, max(0.0, self.limit - waited)))
        self.delay = min(self.delay * 2, MAX_DELAY)


def retrying(fn: Callable[[], T], wait: float | None = None) -> T:
    """Run ``fn``; while it fails on a git lock (dulwich ``FileLocked``), wait and retry.

    Raises:
        GitLockHeld: the lock stayed held (see ``Waiter.wait``).
    """
    waiter = Waiter(wait)
    while True:
        try:
            return fn()
        except FileLocked as e:
            waiter.wait(Path(os.fsdecode(e.lockfilename)))


def add_object(git: Repo, obj: ShaFile) -> None:
    """Store a loose object: dulwich writes it through ``<sha>.lock`` as well,
    which a killed process can leave behind."""
    retrying(lambda: git.object_store.add_object(obj))


PACK_THRESHOLD = 64  # more new objects than this go into one pack, not loose files


def store_objects(git: Repo, objects: Iterable[ShaFile], *, pack: bool = True) -> None:
    """Few objects: loose files.  Many: one pack, written at once (a loose object
    costs a directory, a lock file and a rename each).  No existence checks of
    our own: a duplicate in a pack is harmless, and dulwich's ``add_object``
    already skips (and freshens) a loose object that is there; asking the
    store first looked through every pack for each new object."""
    store = git.object_store
    fresh = list({bytes(o.id): o for o in objects}.values())
    if pack and len(fresh) > PACK_THRESHOLD:
        store.add_objects([(o, None) for o in fresh])
        return
    for o in fresh:
        add_object(git, o)


def explain(error: BaseException) -> BaseException:
    """A dulwich ``FileLocked`` that escaped as ``GitLockHeld`` (words, and the
    stale clock started); any other error unchanged."""
    if not isinstance(error, FileLocked):
        return error
    lock = Path(os.fsdecode(error.lockfilename))
    recover_if_stale(lock)
    return GitLockHeld(str(lock), 0.0, _policy.stale_after)


def wait_until_free(path: Path) -> None:
    """Wait (as ``Waiter``) until ``<path>.lock`` is absent, without taking it.

    Raises:
        GitLockHeld: the lock stayed held.
    """
    if str(path) in _held_here():
        return  # ours, held by an outer ``locked_index`` in this thread
    lock, waiter = Path(f"{path}.lock"), Waiter()
    while lock.exists():
        waiter.wait(lock)


def lock_in_git_message(stderr: str) -> Path | None:
    """The lock file git names in ``Unable to create '<F>.lock': File exists``."""
    m = _GIT_LOCK_MESSAGE.search(stderr)
    return Path(m.group(1)) if m else None


def recover_if_stale(lock: Path) -> bool:
    """True when ``lock`` was just removed as stale (module header)."""
    ident = _identity(lock)
    stale_after = _policy.stale_after
    if ident is None or stale_after is None:
        return False  # released meanwhile (the caller's next try will tell), or not ours to judge
    key, now = str(lock), time.monotonic()
    with _observed_lock:
        if is_open_anywhere(lock):
            _observed.pop(key, None)
            return False
        seen = _observed.get(key)
        if seen is None or seen[0] != ident:
            _observed[key] = (ident, now)
            return False
        if now - seen[1] < stale_after:
            return False
        del _observed[key]
        if _identity(lock) != ident:
            return False  # replaced meanwhile: a new lock, maybe a live one
        logger.warning("removing stale git lock %s: no process has it open and it did not "
                       "change for %.0f s (left by a process that died)", lock, now - seen[1])
        try:
            lock.unlink()
        except FileNotFoundError:
            pass
    return True


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def sweep(gitdir: Path) -> list[Path]:
    """Look at every git lock file of a repository; remove the stale ones.

    As the assistant's ``repairStaleGitLocks`` does for a repository it
    works in, so a lock nobody of ours would run into (``annex/index.lock``,
    which stops git-annex) is recovered too.  Looked at: ``<gitdir>/*.lock``,
    ``refs/**/*.lock`` and ``annex/*.lock`` -- never fcntl lock files
    (``journal.lck`` and the like), whose mere presence means nothing.
    Does nothing unless the policy recovers stale locks.  Returns the lock
    files still present.
    """
    if _policy.stale_after is None:
        return []
    found = [*gitdir.glob("*.lock"), *gitdir.glob("annex/*.lock")]
    for dirpath, _dirs, files in os.walk(gitdir / "refs"):
        found += [Path(dirpath) / f for f in files if f.endswith(".lock")]
    return [lock for lock in found if lock.is_file() and not recover_if_stale(lock)]


def is_open_anywhere(path: Path) -> bool:
    """Whether a process we may look at has ``path`` open (``/proc/<pid>/fd``)."""
    target = os.path.realpath(path)
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except FileNotFoundError:
        return True  # cannot tell: assume someone has it
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    return True
            except OSError:
                continue
    return False


# --- the index ------------------------------------------------------------------


class LockedIndex(Index):
    """The index as read under ``index.lock``; ``write`` fills the lock file.

    The rename over the index happens when ``locked_index`` ends, so the
    callers' habit of writing more than once (``gitops.settle_index``) stays
    inside one hold of the lock.
    """

    def __init__(self, git: Repo, path: Path, fd: int) -> None:
        super().__init__(path)
        self.git = git
        self.lock_path = Path(f"{path}.lock")
        self.fd = fd
        self.written = False
        self.afterwards: list[Callable[[], None]] = []

    def after_release(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the outermost ``locked_index`` released the lock."""
        self.afterwards.append(fn)

    def write(self) -> None:
        buf = io.BytesIO()
        writer = IndexChecksumWriter(buf, self.object_format)
        extensions = [e for e in self._extensions
                      if e.signature not in CACHE_EXTENSIONS and e.to_bytes()]
        write_index_dict(writer, dict(self.items()), version=self._version,
                         extensions=extensions, object_format=self.object_format)
        writer.write_checksum()
        data = buf.getvalue()
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.ftruncate(self.fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.written = True

    def written_mtime(self) -> int:
        """The mtime the index will have once renamed (git's racy-clean reference)."""
        return int(os.fstat(self.fd).st_mtime)


_held = threading.local()


def _held_here() -> dict[str, LockedIndex]:
    """Index path -> the ``LockedIndex`` this thread holds."""
    held: dict[str, LockedIndex] = _held.__dict__.setdefault("by_path", {})
    return held


@contextmanager
def locked_index(git: Repo, wait: float | None = None) -> Iterator[LockedIndex]:
    """Hold ``index.lock`` for a read-modify-write of the index (module header).

    On a normal exit a written index is renamed over ``index`` and what was
    registered with ``after_release`` runs; on an exception the lock file is
    removed and the index is left as it was.

    Raises:
        GitLockHeld: another process kept ``index.lock`` (see ``Waiter.wait``).
    """
    path = Path(git.index_path())
    held = _held_here()
    outer = held.get(str(path))
    if outer is not None:
        yield outer
        return
    fd = _create(Path(f"{path}.lock"), wait)
    try:
        index = LockedIndex(git, path, fd)
    except BaseException:
        _release(fd, Path(f"{path}.lock"), None)
        raise
    held[str(path)] = index
    try:
        yield index
    except BaseException:
        _release(fd, index.lock_path, None)
        raise
    else:
        _release(fd, index.lock_path, path if index.written else None)
    finally:
        del held[str(path)]
    for fn in index.afterwards:
        fn()


def _create(lock: Path, wait: float | None) -> int:
    waiter = Waiter(wait)
    while True:
        try:
            return os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            waiter.wait(lock)


def _release(fd: int, lock: Path, publish_to: Path | None) -> None:
    """Rename the lock file over ``publish_to``; without one, just drop the lock.

    No fsync, as git by default (``core.fsync`` leaves the index out): the
    lock is held as briefly as git holds it, since git-annex gives up at once
    on a held ``index.lock``.
    """
    os.close(fd)
    if publish_to is not None:
        os.replace(lock, publish_to)
    else:
        try:
            lock.unlink()
        except FileNotFoundError:
            pass
