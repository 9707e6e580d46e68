"""Recent activity: timed lines, repeats folded, kept across restarts (issue 19).

Each line the core reports becomes an ``Activity`` (when, what, how many times in
a row).  A line equal to the newest one folds into it (its count grows, its time
moves on) instead of filling the list with copies.  The newest ``KEEP`` lines
are written to ``<config dir>/activity.json`` (temp file + rename) on each
change and read back on start, so the list survives a restart.  A file that
cannot be read is ignored with a log line: activity is a convenience, never a
reason to refuse to start.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

KEEP = 100
FILE_NAME = "activity.json"


@dataclass(frozen=True)
class Activity:
    """One line of recent activity; ``count`` > 1 when it happened that many times in a row."""

    time: float
    text: str
    count: int = 1


class ActivityLog:
    """The newest-first list behind ``Status.activity_log``."""

    def __init__(self, config_dir: Path | None, clock: Callable[[], float]) -> None:
        self.path = config_dir / FILE_NAME if config_dir is not None else None
        self.clock = clock
        self._entries: deque[Activity] = deque(self._load(), maxlen=KEEP)

    def entries(self) -> tuple[Activity, ...]:
        """Newest first."""
        return tuple(self._entries)

    def add(self, text: str) -> None:
        """Record ``text`` now, folded into the newest line when it is the same."""
        now = self.clock()
        if self._entries and self._entries[0].text == text:
            self._entries[0] = Activity(now, text, self._entries[0].count + 1)
        else:
            self._entries.appendleft(Activity(now, text))
        self._save()

    def _load(self) -> list[Activity]:
        if self.path is None or not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [Activity(float(d["time"]), str(d["text"]), int(d.get("count", 1)))
                    for d in data][:KEEP]
        except (OSError, ValueError, TypeError, KeyError) as e:
            logger.warning("ignoring %s: %s", self.path, e)
            return []

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps([asdict(a) for a in self._entries]), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as e:
            logger.warning("cannot keep the activity list in %s: %s", self.path, e)
