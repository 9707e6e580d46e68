"""When the committer commits: the assistant's batching rules, as a pure object.

Spec: assistant-behaviour.md 3.1 step 2, kept by section 8: the committer
looks at pending changes at least 1 s after they happened; 10 or more changes
within the last second mean a batch operation is running, so it waits; never
more than 5000 changes go into one commit.

Theory of operation
-------------------
``Batcher`` holds the pending changes (repository-relative paths, newest
time per path) and a bounded window of recent change times.  The watcher
calls ``record(paths, now)``; the committer asks ``decide(now)``, which
returns the paths to commit now (at most ``max_batch``) or nothing, and
``next_check(now)`` tells it when asking again makes sense.  Paths handed out
leave the pending set; ``requeue`` puts back those a commit could not take
(e.g. a file still being written).  No clock, no IO: tests drive ``now``.

Rules of ``decide`` (first match wins):

1. nothing pending -> nothing;
2. ``max_batch`` or more pending -> commit ``max_batch`` now (oldest first),
   even during a burst, so a huge import becomes a few large commits;
3. ``burst`` (10) or more changes within the last ``window`` (1 s) -> wait;
4. the oldest pending change is younger than ``quiet`` (1 s) -> wait;
5. otherwise commit everything pending.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

logger = logging.getLogger(__name__)

QUIET = 1.0
BURST = 10
WINDOW = 1.0
MAX_BATCH = 5000


@dataclass(frozen=True)
class BatchRules:
    quiet: float = QUIET
    burst: int = BURST
    window: float = WINDOW
    max_batch: int = MAX_BATCH


class Batcher:
    def __init__(self, rules: BatchRules | None = None) -> None:
        self.rules = rules or BatchRules()
        self._pending: dict[str, float] = {}  # path -> time of its first unhandled change
        # Only the last ``burst`` change times matter for rule 3.
        self._recent: deque[float] = deque(maxlen=self.rules.burst)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, paths: list[str] | set[str] | tuple[str, ...], now: float) -> None:
        """Changes seen now (one per path; a path already pending keeps its age)."""
        for p in paths:
            self._pending.setdefault(p, now)
            self._recent.append(now)

    def requeue(self, paths: list[str], now: float) -> None:
        """Put back paths a commit could not take; they wait a full quiet period."""
        for p in paths:
            self._pending.setdefault(p, now)

    def burst_running(self, now: float) -> bool:
        r = self.rules
        return len(self._recent) >= r.burst and now - self._recent[0] < r.window

    def decide(self, now: float) -> list[str]:
        """The paths to commit now, oldest first; [] means wait."""
        r = self.rules
        if not self._pending:
            return []
        if len(self._pending) >= r.max_batch:
            return self._take(r.max_batch)
        if self.burst_running(now):
            return []
        if now - min(self._pending.values()) < r.quiet:
            return []
        return self._take(len(self._pending))

    def flush(self) -> list[str]:
        """Everything pending, now (before a merge: local changes must be committed)."""
        return self._take(len(self._pending))

    def next_check(self, now: float) -> float | None:
        """When ``decide`` may next say yes (None: nothing pending)."""
        r = self.rules
        if not self._pending:
            return None
        if len(self._pending) >= r.max_batch:
            return now
        at = min(self._pending.values()) + r.quiet
        if self.burst_running(now):
            at = max(at, self._recent[0] + r.window)
        return max(at, now)

    def _take(self, n: int) -> list[str]:
        chosen = sorted(self._pending, key=lambda p: (self._pending[p], p))[:n]
        for p in chosen:
            del self._pending[p]
        return chosen
