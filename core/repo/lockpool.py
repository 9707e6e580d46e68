"""One process-wide pool of the file locks git-annex also takes.

Theory of operation
-------------------
git-annex excludes other processes with POSIX ``fcntl`` record locks
(repository-format.md 2.4; its LockPool).  Those locks belong to the
*process*: a second ``lockf`` on the same file from another thread succeeds
whatever the mode, and closing *any* descriptor of the file drops every lock
the process holds on it.  Our servers (p2phttp, the TCP listener, the daemon)
serve many sessions in one process, on several threads, so the fcntl lock
alone excludes nobody inside the process.

``hold`` therefore keeps, per lock file, one entry: the single descriptor
this process has open on it, its mode and how many holders share it.  A
request conflicting with an entry (exclusive against anything, shared
against exclusive) is refused at once; otherwise the first holder opens the
file and takes the fcntl lock, non-blocking, and later shared holders only
count.  The last holder closes the descriptor.  Every lock here is
non-blocking: a busy lock raises ``LockBusy`` and the caller decides
(git-annex fails the transfer, the server answers as git-annex does).

Each lock file's entry is guarded by one of ``STRIPES`` ``threading.Lock``s,
picked by its path's hash, not by one for the whole process: creating,
opening and deleting a lock file are file-system calls that can take
milliseconds on a busy disk, and a cluster gateway runs a dozen transfers in
four repositories at once; under one guard each waited for all the others'
calls.

After the fcntl lock is granted the path must still name the locked file
(git-annex's checkSaneLock): a holder that finished may have deleted the lock
file between our ``open`` and our ``lockf``, and a lock on a deleted file
excludes nobody.  Then we open the path again (a few times) before giving up.

Rules kept here and nowhere else: no descriptor of a lock file is ever opened
outside this pool; the conflict decision and the fcntl call happen under the
lock file's guard; ``unlink=True`` deletes the lock file while it is still
locked, as git-annex's transfer cleanup does, so nobody can lock the old file
after it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import RepoError

logger = logging.getLogger(__name__)

SANE_TRIES = 3  # re-opens after the lock file was replaced under us


class LockBusy(RepoError):
    """Another holder, in this process or another, has the lock."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is locked")
        self.path = path


@dataclass
class _Entry:
    fd: int
    exclusive: bool
    count: int


STRIPES = 64  # guards; lock files that share one wait for each other's calls


class _Stripe:
    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.entries: dict[str, _Entry] = {}


_stripes = tuple(_Stripe() for _ in range(STRIPES))


def _stripe(key: str) -> _Stripe:
    return _stripes[hash(key) % STRIPES]


class Held:
    """A granted lock; ``upgrade`` asks whether we are its only holder anywhere."""

    def __init__(self, key: str, path: Path) -> None:
        self._key = key
        self.path = path

    def upgrade(self) -> bool:
        """Make a shared lock exclusive if nobody else holds it, in or out of process.

        Used before cleaning up what the shared holders rely on (git-annex
        removes a retention timestamp only when it can lock exclusively).
        A refused fcntl request leaves the shared lock as it was.
        """
        stripe = _stripe(self._key)
        with stripe.guard:
            e = stripe.entries[self._key]
            if e.exclusive:
                return True
            if e.count != 1 or not _try_lockf(e.fd, True):
                return False
            e.exclusive = True
            return True


def _try_lockf(fd: int, exclusive: bool) -> bool:
    try:
        fcntl.lockf(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:  # EAGAIN/EACCES: held elsewhere; other errors: cannot lock
        return False
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _open_locked(path: Path, exclusive: bool, create: bool, mode: int) -> int:
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    for _ in range(SANE_TRIES):
        fd = os.open(path, flags, mode)  # FileNotFoundError: the caller's to say why
        if not _try_lockf(fd, exclusive):
            os.close(fd)
            raise LockBusy(path)
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the file we locked was deleted by its last holder: again
        if not create:
            break
    raise LockBusy(path)


@contextlib.contextmanager
def hold(
    path: Path,
    *,
    exclusive: bool,
    create: bool = True,
    mode: int = 0o644,
    unlink: bool = False,
) -> Iterator[Held]:
    """Hold ``path`` locked, shared or exclusive, against this and other processes.

    ``unlink``: delete the lock file on release while still holding it (only
    done by the last holder of an exclusive lock).

    Raises:
        LockBusy: a conflicting lock is held here or elsewhere.
        FileNotFoundError: ``create`` is false, or the directory is missing.
    """
    key = os.path.abspath(path)
    stripe = _stripe(key)
    with stripe.guard:
        e = stripe.entries.get(key)
        if e is not None:
            if exclusive or e.exclusive:
                raise LockBusy(path)
            e.count += 1
        else:
            stripe.entries[key] = _Entry(_open_locked(path, exclusive, create, mode), exclusive, 1)
    try:
        yield Held(key, path)
    finally:
        _release(key, path, unlink)


def _release(key: str, path: Path, unlink: bool) -> None:
    stripe = _stripe(key)
    with stripe.guard:
        e = stripe.entries[key]
        e.count -= 1
        if e.count:
            return
        del stripe.entries[key]
        if unlink and e.exclusive:
            with contextlib.suppress(OSError):
                path.unlink()
        os.close(e.fd)


def held_here(path: Path) -> bool:
    """Whether any holder in this process has ``path`` locked (tests, reports)."""
    key = os.path.abspath(path)
    stripe = _stripe(key)
    with stripe.guard:
        return key in stripe.entries


__all__ = ["Held", "LockBusy", "held_here", "hold"]
