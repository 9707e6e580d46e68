"""``get`` of many files: content from repositories on this machine, a few files at once.

Theory of operation
-------------------
Receiving a file from a path remote is reading, hashing, writing and one
``fdatasync``: all of them release the GIL, and one file at a time leaves
the CPU idle while the disk syncs and the disk idle while the CPU hashes.
``Receivers`` runs the receiving half of a get (``receive_key``: the transfer
lock, the temporary file, the hash, the fdatasync, the check against the key
and the rename under it) for the files *ahead* of the one being handled, on
a small pool of worker threads, at most ``window`` keys in flight.

Everything else stays on the caller's thread, in file order, as in a get of
one file at a time: choosing the sources (the location log), writing the
location line (``AnnexRepo.keep_received``: one writer of the journal),
populating unlocked files, the outcome of each file.  A worker hands its
committed ``Incoming`` over with the transfer lock still held, and the caller
logs the content before it lets the lock go, the order every receiver keeps;
the letting go (git-annex's lock and info files: three unlinks) is handed
back to the pool, off the caller's path, and ``close`` waits for it.  The
caller takes the keys in file order, so the window is wide: one slow
fdatasync at the head of the line must not leave the other workers idle.
A worker never touches the git-annex branch.

Only keys whose every source is a path remote go to the pool; the others (a
network session is one conversation at a time) are got on the caller's
thread by the caller's ``get_key``, as before.  Progress reported by the
workers goes through ``jobs.SharedProgress``, which also stops them.

No room on the disk (``DiskReserveError``, ``DiskFull``) is this disk's, not
a source's: no other source is tried.  A key received ahead shares the disk
with the other writes of the moment (keys ahead of it, the caller's copy of
an unlocked file, which it deletes again when it does not fit), so when its
turn comes a key the pool could not fit is tried once more on the caller's
thread, once the keys in flight have ended, as a get of one file at a time
would: it fails only when it does not fit then.

Ctrl-C is held back while keys go to the pool and while ``close`` waits
(``jobs.ctrl_c_held_back``).  Raised inside the ``Thread.start`` of a
submit, it left that thread running but unknown to the pool, and raised
inside ``close``'s wait it cut the wait short: either way a key kept
afterwards was never logged.

``close`` always runs (it is the context manager's exit): workers stop at
their next chunk (``Incoming`` keeps the partial file in ``annex/tmp`` for a
later resume, as an interrupted get of one file does; nothing half-written
is ever under a key), keys not started are cancelled, running ones joined.
Content a worker verified and moved under its key stays in ``_received``
until it is logged, so when Ctrl-C cuts ``get_key`` short (or comes before
it), ``close`` logs it: no kept copy goes unrecorded.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from core.errors import CoreError, DiskFull, DiskReserveError, RemoteError, TransferBusy
from core.ops.jobs import SharedProgress, ctrl_c_held_back
from core.remotetypes import Remote, RemoteKind
from core.repo.key import Key
from core.repo.objects import Incoming
from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)

LOCAL_JOBS = 3  # files received at once from path remotes (2 cores: CPU and disk overlap)
# Keys received ahead per job (each holds its transfer lock: two descriptors).
# With 2 the caller waited a third of its time on the head of the line while
# the other workers, window full, sat idle (py-spy, issue 20).
WINDOW_PER_JOB = 8


def receive_key(key: Key, sources: Sequence[Remote], incoming: Callable[[Key, str], Incoming],
                advance: Callable[[int], None]) -> tuple[str, Incoming]:
    """Receive ``key`` from the first of ``sources`` that delivers content matching it.

    Returns the remote's name and the committed ``Incoming``, which still
    holds the transfer lock: the caller logs the content (``keep_received``)
    and then closes it.  Touches the object store only, never the branch, so
    it may run on a worker thread (``Receivers``).

    Raises:
        TransferBusy: another transfer is bringing ``key`` here.
        DiskReserveError, DiskFull: no room for it here (from any source).
        RemoteError: no source could provide it.
    """
    errors: list[str] = []
    for remote in sources:
        inc = incoming(key, remote.info.uuid or "")
        try:
            remote.retrieve(key, inc, advance)
            inc.commit()
        except (TransferBusy, DiskReserveError, DiskFull):
            inc.close()
            raise  # no other remote can help: the key is being written, or no room here
        except CoreError as e:
            inc.close()
            errors.append(f"{remote.info.name}: {e}")
            continue
        except BaseException:
            inc.close()
            raise
        return remote.info.name, inc
    if not errors:
        raise RemoteError(f"{key}: no reachable remote has this content")
    raise RemoteError("; ".join(errors))


def _release(key: Key, inc: Incoming) -> None:
    """Let a logged key's transfer lock go (on a worker: nobody waits for it)."""
    try:
        inc.close()
    except OSError as e:  # the content is kept and logged: only the lock files are left
        logger.warning("%s: releasing the transfer lock: %s", key, e)


class Receivers:
    """Gets the keys of ``keys`` in that order, receiving the coming ones ahead on ``jobs`` threads.

    ``sources(key)`` lists the remotes to try, cheapest first; ``get_key(key)``
    gets a key on the caller's thread (what is not for the pool).
    """

    def __init__(self, repo: AnnexRepo, keys: Iterable[Key], progress: SharedProgress,
                 sources: Callable[[Key], list[Remote]], get_key: Callable[[Key], str],
                 jobs: int = LOCAL_JOBS) -> None:  # fmt: skip
        self.repo = repo
        self.progress = progress
        self.sources = sources
        self.get_key_here = get_key
        self.window = WINDOW_PER_JOB * jobs  # keys received (or being received) but not yet taken
        self._upcoming = iter(keys)
        self._seen: set[Key] = set()
        self._ahead: dict[Key, Future[None]] = {}
        self._received: dict[Key, tuple[str, Incoming]] = {}  # under its key, maybe not logged
        self._pool = ThreadPoolExecutor(jobs, thread_name_prefix="receive") if jobs > 1 else None

    def get_key(self, key: Key) -> str:
        """What ``get_key`` does for ``key``, from the pool when it was sent there."""
        self._fill()
        future = self._ahead.pop(key, None)
        if future is None:
            return self.get_key_here(key)
        try:
            future.result()  # raises what the receiving raised
        except (DiskReserveError, DiskFull):  # maybe room held for a moment by other writes
            wait(self._ahead.values())
            return self.get_key_here(key)  # once more, alone (module header)
        name, inc = self._received[key]
        try:
            self.repo.keep_received(key)
        except BaseException:
            inc.close()
            raise  # still in ``_received``: ``close`` settles it
        assert self._pool is not None  # a future came from it
        with ctrl_c_held_back():  # so the pool releases it or ``close`` does, never both
            self._pool.submit(_release, key, inc)  # the lock goes after the line, off this thread
            del self._received[key]
        return f"from {name}"

    def _fill(self) -> None:
        with ctrl_c_held_back():  # a submit may start a thread: see ``jobs.ctrl_c_held_back``
            while self._pool is not None and len(self._ahead) < self.window:
                key = next(self._upcoming, None)
                if key is None:
                    return
                sources = self._local_sources(key)
                if sources:
                    self._ahead[key] = self._pool.submit(self._receive, key, sources)

    def _receive(self, key: Key, sources: list[Remote]) -> None:
        """On a worker: receive ``key``; the caller logs it (``get_key``, else ``close``)."""
        self._received[key] = receive_key(key, sources, self.repo.objects.incoming, self._advance)

    def _local_sources(self, key: Key) -> list[Remote] | None:
        """The sources of ``key`` when it is to be received on the pool, else None."""
        if key in self._seen:
            return None
        self._seen.add(key)
        if self.repo.objects.has(key):
            return None
        try:
            self.repo.require_writable()
        except CoreError:
            return None  # said per file by get_key
        sources = self.sources(key)
        if not sources or any(r.info.kind is not RemoteKind.PATH for r in sources):
            return None
        return sources

    def _advance(self, nbytes: int) -> None:
        self.progress.advance(0, nbytes)  # raises Stopped once ``close`` began

    def close(self) -> None:
        """Stop the workers; log what they kept and nobody logged yet.

        That is content under its key whose ``get_key`` was cut short (Ctrl-C
        while waiting for it or while logging it) or never came.  Logging it
        again is harmless (the log changes only when the line does); content
        ``keep_received`` gave up is no longer there and is not logged.

        A second Ctrl-C is raised once this is done (the workers end at their
        next chunk): on Python 3.11 a ``join`` it cut short would mark a
        running worker ended, and what it kept then would go unlogged.
        """
        self.progress.stop.set()
        with ctrl_c_held_back():
            for future in self._ahead.values():
                future.cancel()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._ahead.clear()
            for key, (_, inc) in list(self._received.items()):
                with inc, contextlib.suppress(CoreError):  # keep_received said why; the content went
                    if self.repo.objects.has(key):
                        self.repo.keep_received(key)
                del self._received[key]

    def __enter__(self) -> Receivers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
