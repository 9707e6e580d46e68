"""The transfer queue and its slots.

Spec: assistant-behaviour.md 4 (the queue), 8 (more than one slot; failures
silent but retried).  Departure from 8's "one per remote at a time" (issue 19:
with 2 slots and one remote, one slot stayed idle): every transfer opens its
own repository handle and its own connection to the remote (``jobs.run_transfer``),
and content is guarded per key by git-annex's transfer locks, so the slots are
all used, as ``git annex copy -J2`` to one remote does.

Theory of operation
-------------------
Entries are ``Transfer`` records (direction, repository, key, candidate
remotes).  ``put`` adds one unless the same (repository, direction, key) is
already queued or running; user-caused work goes to the front, scans to the
back.  The queue is bounded: ``put`` waits while ``capacity`` entries are
queued, so a full scan of a large tree never builds a huge list (4: scans
block).

``run`` is the scheduler task.  It owns a TaskGroup with one child per
running transfer.  It starts the first queued entry whose ``not_before`` has
passed, while fewer than ``slots`` run and the daemon is not paused; it then sleeps until something changes (``_wake``) or
the earliest ``not_before``.

A transfer runs through the ``Runner`` (the daemon: re-check, move the
content in a thread, finish under the repository lock).  Outcomes:

* done -> kept in ``recent`` for display;
* ``Cancelled`` (user) -> cancelled; a download keeps its partial file, so the
  next attempt resumes (``Incoming``).  The cancel holds: the same (repository,
  direction, key) is not queued again by a scan until the person's "Sync now"
  (``release``), and it stays in the status (ATTENTION) however many other
  transfers follow, unless its content gets where it is wanted another way
  (``forget``, after the repository's next scan);
* could not reach the remote -> the next candidate remote is tried at once;
  when none is left the entry is dropped silently and ``unreachable(repo,
  remote)`` is reported, the rescan on reconnect queues it again (4, 6.1);
* other failure -> retried after ``backoff(attempt)`` (2 s doubling, at most
  5 min), up to ``max_attempts``, then failed (silently: only the transfer
  list shows it).

Progress arrives from the worker thread through ``report`` (thread-safe,
throttled to ``PROGRESS_INTERVAL``) and is applied on the loop.  The bandwidth
limit is kept there too: the thread sleeps as long as the bytes so far are
ahead of it, however long that is (one chunk of a transfer may be worth
seconds at the limit); a cancel ends the sleep and the transfer at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.daemon.jobs import Cancelled, TransferMeter
from core.repo.key import Key
from core.status import TransferStatus

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.1
MAX_ATTEMPTS = 5
RECENT = 20


def backoff(attempt: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    return float(min(cap, base * (2 ** max(attempt - 1, 0))))


class Unreachable(Exception):  # noqa: N818
    """Raised by a Runner: the remote could not be reached (not: it said no)."""


class NotNeeded(Exception):  # noqa: N818
    """Raised by a Runner: the re-check says the transfer is no longer needed."""


@dataclass
class Transfer:
    id: int
    repo: str
    direction: str
    key: Key
    path: str
    remotes: list[str]
    state: str = "queued"
    bytes_done: int = 0
    speed: float = 0.0
    error: str | None = None
    attempts: int = 0
    not_before: float = 0.0
    meter: TransferMeter | None = None
    last_report: tuple[float, int] = (0.0, 0)
    tried: list[str] = field(default_factory=list)

    @property
    def remote(self) -> str:
        return self.remotes[0] if self.remotes else ""

    def ident(self) -> tuple[str, str, Key]:
        return (self.repo, self.direction, self.key)

    def status(self) -> TransferStatus:
        return TransferStatus(
            id=self.id, repo=self.repo, path=self.path, key=str(self.key),
            direction="download" if self.direction == "download" else "upload",
            remote=self.remote, bytes_done=self.bytes_done, bytes_total=self.key.size,
            speed=self.speed, state=self.state,  # type: ignore[arg-type]
            error=self.error,
        )


Runner = Callable[[Transfer, TransferMeter], Awaitable[None]]


class TransferQueue:
    def __init__(
        self,
        runner: Runner,
        *,
        slots: int = 2,
        capacity: int = 1000,
        on_change: Callable[[], None] = lambda: None,
        unreachable: Callable[[str, str], None] = lambda repo, remote: None,
        paused: Callable[[], bool] = lambda: False,
        bandwidth: Callable[[], int | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        max_attempts: int = MAX_ATTEMPTS,
        retry_base: float = 2.0,
    ) -> None:
        self.runner = runner
        self.slots = slots
        self.capacity = capacity
        self.on_change = on_change
        self.unreachable = unreachable
        self.paused = paused
        self.bandwidth = bandwidth
        self.clock = clock
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self._queued: deque[Transfer] = deque()
        self._running: dict[int, Transfer] = {}
        self._held: dict[tuple[str, str, Key], Transfer] = {}  # cancelled by the person
        self.recent: deque[Transfer] = deque(maxlen=RECENT)
        self._next_id = 1
        self._wake = asyncio.Event()
        self._room = asyncio.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- adding and removing ----------------------------------------------------

    def _known(self, ident: tuple[str, str, Key]) -> bool:
        return any(t.ident() == ident for t in (*self._queued, *self._running.values()))

    async def put(self, repo: str, direction: str, key: Key, path: str, remotes: list[str],
                  front: bool = False) -> Transfer | None:
        """Queue a transfer (None: already queued or running, or cancelled by the
        person and not released since). Waits while the queue is full."""
        if not remotes or self._known((repo, direction, key)) or (repo, direction, key) in self._held:
            return None
        async with self._room:
            await self._room.wait_for(lambda: len(self._queued) < self.capacity)
        if self._known((repo, direction, key)):
            return None
        t = Transfer(self._next_id, repo, direction, key, path, list(remotes))
        self._next_id += 1
        if front:
            self._queued.appendleft(t)
        else:
            self._queued.append(t)
        self._changed()
        return t

    def cancel(self, transfer_id: int) -> bool:
        """Cancel a queued or running transfer; False when there is none with this id."""
        for t in list(self._queued):
            if t.id == transfer_id:
                self._queued.remove(t)
                self._held[t.ident()] = t
                self._finish(t, "cancelled")
                return True
        t2 = self._running.get(transfer_id)
        if t2 is not None and t2.meter is not None:
            self._held[t2.ident()] = t2
            t2.meter.cancel.set()
            return True
        return False

    def release(self, repo: str) -> None:
        """The person's "Sync now": what they cancelled in ``repo`` may be queued again."""
        for ident in [i for i in self._held if i[0] == repo]:
            del self._held[ident]
        self._changed()

    def forget(self, transfer_id: int) -> None:
        """A cancelled or failed transfer made moot (its content got where it is
        wanted another way): out of the status, and no longer held back."""
        for t in [t for t in self.recent if t.id == transfer_id]:
            self.recent.remove(t)
        for ident in [i for i, t in self._held.items() if t.id == transfer_id]:
            del self._held[ident]
        self._changed()

    def drop_remote(self, repo: str, remote: str) -> None:
        """Forget queued transfers that can only use ``remote`` (it became unreachable)."""
        for t in list(self._queued):
            if t.repo == repo and remote in t.remotes:
                t.remotes.remove(remote)
                if not t.remotes:
                    self._queued.remove(t)
        self._changed()

    def drop_repo(self, repo: str) -> None:
        for t in list(self._queued):
            if t.repo == repo:
                self._queued.remove(t)
        for t in self._running.values():
            if t.repo == repo and t.meter is not None:
                t.meter.cancel.set()
        self._changed()

    # --- what status shows ---------------------------------------------------------

    def transfers(self, repo: str) -> tuple[TransferStatus, ...]:
        items = [*self._running.values(), *self._queued, *reversed(self.recent)]
        shown = {id(t) for t in items}
        items += [t for t in self._held.values() if id(t) not in shown]
        return tuple(t.status() for t in items if t.repo == repo)

    def queued(self, repo: str) -> int:
        return sum(1 for t in self._queued if t.repo == repo)

    def idle(self) -> bool:
        return not self._queued and not self._running

    # --- the scheduler -------------------------------------------------------------

    def _changed(self) -> None:
        self._wake.set()
        self.on_change()

    def wake(self) -> None:
        self._wake.set()

    def _pick(self, now: float) -> Transfer | None:
        return next((t for t in self._queued if t.not_before <= now), None)

    def _next_due(self, now: float) -> float | None:
        later = [t.not_before for t in self._queued if t.not_before > now]
        return min(later) - now if later else None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as tg:
            while True:
                self._wake.clear()
                now = self.clock()
                while not self.paused() and len(self._running) < self.slots:
                    t = self._pick(now)
                    if t is None:
                        break
                    self._queued.remove(t)
                    self._running[t.id] = t
                    t.state = "running"
                    tg.create_task(self._run_one(t), name=f"transfer-{t.id}")
                    self._changed()
                async with self._room:
                    self._room.notify_all()
                delay = self._next_due(now)
                try:
                    async with asyncio.timeout(delay if delay is not None else 60.0):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _run_one(self, t: Transfer) -> None:
        meter = TransferMeter(lambda n: self._report(t, n))
        t.meter = meter
        t.attempts += 1
        t.last_report = (self.clock(), t.bytes_done)
        outcome, error = "done", None
        try:
            await self.runner(t, meter)
        except Cancelled:
            outcome = "cancelled"
        except NotNeeded:
            outcome = "done"
        except Unreachable as e:
            outcome, error = self._unreachable(t, str(e))
        except Exception as e:  # noqa: BLE001 - any failure is retried, silently (spec 4)
            logger.info("transfer %s %s via %s failed: %s", t.direction, t.path, t.remote, e)
            outcome, error = self._retry(t, str(e))
        finally:
            self._running.pop(t.id, None)
            t.meter = None
        if outcome == "requeued":
            t.state = "queued"
            t.error = error
            self._queued.append(t)
            self._changed()
        else:
            t.error = error
            self._finish(t, outcome)

    def _unreachable(self, t: Transfer, error: str) -> tuple[str, str | None]:
        gone = t.remotes.pop(0)
        self.unreachable(t.repo, gone)
        t.attempts = 0
        return ("requeued", error) if t.remotes else ("dropped", error)

    def _retry(self, t: Transfer, error: str) -> tuple[str, str | None]:
        if t.attempts >= self.max_attempts:
            return "failed", error
        t.not_before = self.clock() + backoff(t.attempts, self.retry_base)
        return "requeued", error

    def _finish(self, t: Transfer, state: str) -> None:
        if state != "cancelled" and self._held.get(t.ident()) is t:
            del self._held[t.ident()]  # it ended otherwise before the cancel reached it
        t.state = "failed" if state == "dropped" else state
        t.speed = 0.0
        if state == "done" and t.key.size is not None:
            t.bytes_done = t.key.size
        if state != "dropped":
            self.recent.append(t)
        self._changed()

    # --- progress, from the worker thread ---------------------------------------------

    def _report(self, t: Transfer, done: int) -> None:
        """Called in the transfer thread for every chunk: throttle, apply on the loop."""
        limit = self.bandwidth()
        now = self.clock()
        last_time, last_done = t.last_report
        if limit:
            # Sleep so the average rate since the last report stays under the limit.
            ahead = (done - last_done) / limit - (now - last_time)
            if ahead > 0:
                cancel = t.meter.cancel if t.meter is not None else threading.Event()
                if cancel.wait(ahead):
                    raise Cancelled()
                now = self.clock()
        if now - last_time < PROGRESS_INTERVAL and done != (t.key.size or -1):
            return
        speed = (done - last_done) / max(now - last_time, 1e-6)
        t.last_report = (now, done)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._apply, t, done, speed)
            except RuntimeError:
                pass  # the loop closed meanwhile: nobody is watching any more

    def _apply(self, t: Transfer, done: int, speed: float) -> None:
        if t.state != "running":
            return
        t.bytes_done = done
        t.speed = speed if not t.speed else 0.7 * t.speed + 0.3 * speed
        self.on_change()
