"""Running a transfer command's work on N workers: ``-J``/``--jobs`` and ``annex.jobs``.

Theory of operation
-------------------
``get`` and ``copy`` move one key after another over one session per remote,
so the other end sets the pace (git-annex-shell rewrites its transfer
progress file dozens of times per MiB; an HTTP round trip per request).
``run_jobs`` runs the per-item work on ``jobs`` threads, each with its **own**
``AnnexRepo`` handle:

- dulwich objects are never shared between threads (a pack is read by seek +
  read on one file object);
- ``core.remotes`` pools the remotes it opens per repository *object*, so a
  worker's remotes, and their sessions, are its own: N ``p2pstdio`` server
  processes over ssh, N HTTP requests at once.  When the worker ends it
  closes them (``close_remotes``), which ends every session and reaps the
  server processes, whatever ended the worker.

With ``jobs == 1`` the work runs inline in the caller's thread on the
caller's handle, exactly as before (one session, Ctrl-C handled by the
remote's own event loop).

What the workers share, and what keeps it safe:

- the journal and the location log: every write takes git-annex's journal
  lock (``core.repo.branch``: per lock file per process a thread lock, then
  the fcntl lock), so our workers and git-annex write one at a time;
- transfer and content locks: ``core.repo.lockpool`` excludes other threads
  of this process as well as other processes.  The caller gives each key to
  one item, so two workers never race for one key's transfer lock;
- the index (unlocked files): ``index.lock``, created exclusively and waited
  for (``core.gitlock``);
- the caller's ``Progress``: one lock around it (``SharedProgress``).

Stopping (style 5: every task has an owner, cleanup always runs): the first
exception a worker's work lets out (per-file failures are results, so this
is a bug), or a ``KeyboardInterrupt`` in the calling thread, sets ``stop``.
Workers take no new item; a transfer in flight learns it at its next byte
report -- every remote kind reports the bytes it moves through
``Progress.advance`` -- which raises ``Stopped`` inside the transfer, so the
remote's own cleanup runs (the session is closed, the transfer lock
released; a partial download stays in ``annex/tmp`` for resume, as with
git-annex).  A transfer that reports nothing (a silent server) ends at its
read timeout.  The calling thread waits for every worker's cleanup, then
re-raises what stopped the pool.  It waits on a condition the workers signal
as they end, never in ``Thread.join``: on Python 3.11 a ``join`` that Ctrl-C
interrupts marks the thread it waited for as ended while it still runs, so
a later ``join`` -- and the interpreter's own wait at exit -- returns at once
and the process can exit in the middle of that worker's transfer (its
transfer lock and info files left behind).  For the same reason Ctrl-C is
held back while the workers start (``ctrl_c_held_back``): raised inside
``Thread.start`` it could leave a running worker out of the count.  And the
wait wakes every ``WAKE`` seconds: the kernel may hand a SIGINT to any
thread of the process, and Python runs its handler only in the main thread,
when that thread runs bytecode; a main thread asleep in an untimed lock wait
slept on while the workers transferred forever (1 run in a few hundred of
the pool's Ctrl-C test, under load).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from core.progress import Progress

if TYPE_CHECKING:
    from dulwich.config import StackedConfig

    from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Work = Callable[["AnnexRepo", T, Progress], R]

# Without -J and annex.jobs: git-annex's default, one job (see docs/design.md,
# "Concurrent transfers", for the measurements behind keeping it).
DEFAULT_JOBS = 1
WAKE = 0.2  # seconds between the waiting main thread's looks at a pending Ctrl-C


# --- how many ---------------------------------------------------------------------


def parse_jobs(text: str) -> int:
    """``N`` (at least 1) or ``cpus``, as git-annex reads ``-J`` and ``annex.jobs``.

    Raises:
        ValueError: anything else.
    """
    text = text.strip()
    if text == "cpus":
        return max(os.cpu_count() or 1, 1)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"jobs must be a number of at least 1, or cpus (not {text!r})")
    return int(text)


def configured_jobs(cfg: StackedConfig) -> int | None:
    """``annex.jobs`` from git config, or None when unset or unreadable (ignored, as
    git-annex ignores a value it cannot parse)."""
    from core.repo.repository import config_value

    value = config_value(cfg, b"annex", b"jobs")
    if value is None:
        return None
    try:
        return parse_jobs(value)
    except ValueError:
        logger.warning("annex.jobs=%r is not a number of jobs; ignored", value)
        return None


def jobs_for(repo: AnnexRepo, given: int | None) -> int:
    """``-J`` when given, else ``annex.jobs``, else ``DEFAULT_JOBS``."""
    return given or configured_jobs(repo.git.get_config_stack()) or DEFAULT_JOBS


# --- the pool ----------------------------------------------------------------------


class Stopped(Exception):  # noqa: N818 - a signal to a worker, never shown to the user
    """Raised inside a worker's transfer once the pool is stopping."""


class SharedProgress:
    """The caller's ``Progress`` behind one lock, and where transfers learn to stop
    (``stop``: set, a byte report raises ``Stopped``)."""

    def __init__(self, progress: Progress, stop: threading.Event | None = None) -> None:
        self._progress = progress
        self.stop = stop or threading.Event()
        self._lock = threading.Lock()

    def start(self, what: str, items: int, total_bytes: int | None) -> None:
        with self._lock:
            self._progress.start(what, items, total_bytes)

    def advance(self, items: int = 0, nbytes: int = 0, current: str = "") -> None:
        # Only byte reports stop: they come from inside a transfer, whose own
        # cleanup then runs; a finished file is still counted.
        if nbytes and self.stop.is_set():
            raise Stopped()
        with self._lock:
            self._progress.advance(items, nbytes, current)

    def finish(self) -> None:
        with self._lock:
            self._progress.finish()


class _Pool(Generic[T, R]):
    def __init__(self, path: str, items: Sequence[T], work: Work[T, R], progress: Progress) -> None:
        self.path = path
        self.items = items
        self.work = work
        self.stop = threading.Event()
        self.progress = SharedProgress(progress, self.stop)
        self.results: dict[int, R] = {}
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        self._running = 0
        self._next = 0
        self.error: BaseException | None = None

    def take(self) -> int | None:
        with self._lock:
            if self.stop.is_set() or self._next >= len(self.items):
                return None
            self._next += 1
            return self._next - 1

    def fail(self, e: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = e
        self.stop.set()

    def worker(self) -> None:
        from core.remotes import close_remotes
        from core.repo.repository import AnnexRepo

        try:
            repo = AnnexRepo.open(self.path)
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            self.fail(e)
            return
        try:
            while (i := self.take()) is not None:
                self.results[i] = self.work(repo, self.items[i], self.progress)
        except Stopped:
            pass  # the pool is stopping: what stopped it is raised by the caller
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            self.fail(e)
        finally:
            try:
                close_remotes(repo)  # ends this worker's sessions, reaps its servers
            finally:
                repo.close()

    def _run_worker(self) -> None:
        try:
            self.worker()
        finally:
            with self._ended:
                self._running -= 1
                self._ended.notify_all()

    def _wait_for_workers(self) -> None:
        with self._ended:
            while self._running:
                self._ended.wait(WAKE)  # timed: a Ctrl-C another thread took is seen

    def run(self, workers: int) -> list[R]:
        try:
            with ctrl_c_held_back():
                for n in range(workers):
                    with self._lock:
                        self._running += 1
                    try:
                        threading.Thread(target=self._run_worker,
                                         name=f"annexsync-job-{n + 1}").start()
                    except RuntimeError:  # no thread could be made: it never runs
                        with self._lock:
                            self._running -= 1
                        raise
            self._wait_for_workers()
        finally:  # Ctrl-C here: stop the workers, wait for their cleanup, re-raise
            self.stop.set()
            self._wait_for_workers()
        if self.error is not None:
            raise self.error
        return [self.results[i] for i in range(len(self.items))]


@contextlib.contextmanager
def ctrl_c_held_back() -> Iterator[None]:
    """Ctrl-C while the workers start is raised once they all have: raised
    inside ``Thread.start`` it may come after the thread began to run, and
    the count of workers to wait for would miss that one (its cleanup not
    awaited).  Only the main thread sees Ctrl-C, and only it may hold it back."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if caught:
            raise KeyboardInterrupt


def run_jobs(repo: AnnexRepo, items: Sequence[T], work: Work[T, R], jobs: int,
             progress: Progress) -> list[R]:  # fmt: skip
    """``work(handle, item, progress)`` for every item, on up to ``jobs`` workers.

    Results come back in the order of ``items``.  ``work`` reports per-item
    failures in its result; anything it raises stops the pool and is raised
    here once every worker has cleaned up (see the module docstring).
    """
    if jobs <= 1:
        return [work(repo, item, progress) for item in items]
    pool: _Pool[T, R] = _Pool(str(repo.path), items, work, progress)
    return pool.run(min(jobs, len(items)))


__all__ = ["DEFAULT_JOBS", "SharedProgress", "Stopped", "configured_jobs", "ctrl_c_held_back", "jobs_for", "parse_jobs", "run_jobs"]
