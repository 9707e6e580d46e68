"""The one place where core status becomes Qt signals.

The core pushes an immutable ``Status`` to one callback on every change
(``Core.subscribe``).  The bridge keeps the newest snapshot and re-emits it as
``statusChanged`` -- coalesced, so a burst of progress updates redraws the views
at most ``max_rate`` times a second -- and derives the one-off events the views
need: an alert that asks to notify the user (``alertRaised``) and a conflict
seen for the first time (``conflictFound``), each emitted once per run.

The callback may arrive on another thread if the core ever calls it from a
worker: it only emits ``_incoming``, and Qt queues that to the bridge's thread.
Views connect to the bridge's signals; the bridge is never subclassed by them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from core.status import Conflict, Health, Status

if TYPE_CHECKING:
    from core.api import Core

logger = logging.getLogger(__name__)

ConflictId = tuple[str, str, tuple[str, ...]]


def conflict_id(c: Conflict) -> ConflictId:
    """A conflict's identity: the same variants of the same file are the same conflict."""
    return (c.repo, c.path, tuple(sorted(c.variants)))


class Bridge(QObject):
    """Core status → Qt signals.  Call ``close()`` (or let the parent delete it) to unsubscribe."""

    statusChanged = Signal(object)  # Status
    alertRaised = Signal(object)  # Alert with notify=True, new
    conflictFound = Signal(object)  # Conflict, new
    _incoming = Signal(object)

    def __init__(
        self,
        core: Core,
        *,
        clock: Callable[[], float] = time.time,
        max_rate: float = 10.0,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.core = core
        self.clock = clock
        self._status: Status = core.status
        # (id, text): an alert replaced by a new text under its name (a new reason) notifies again
        self._seen_alerts: set[tuple[int, str]] = {(a.id, a.text) for a in self._status.alerts}
        self._seen_conflicts: set[ConflictId] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(1000 / max_rate))
        self._timer.timeout.connect(self._on_timer)
        self._dirty = False
        self._incoming.connect(self._on_incoming, Qt.ConnectionType.QueuedConnection)
        self._unsubscribe: Callable[[], None] | None = core.subscribe(self._incoming.emit)

    @property
    def status(self) -> Status:
        """The newest snapshot the core delivered."""
        return self._status

    def now(self) -> float:
        """The clock the views use to render times (injectable for tests)."""
        return self.clock()

    def health(self) -> Health:
        """The tray state now."""
        return self._status.health(self.now())

    def start(self) -> None:
        """Emit the current state once, so views built after the core started show it."""
        self._flush()

    def close(self) -> None:
        """Stop listening to the core."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._timer.stop()

    def _on_incoming(self, status: Status) -> None:
        self._status = status
        if self._timer.isActive():
            self._dirty = True  # the rest of a burst waits for the timer
        else:
            self._flush()  # the first change after a quiet time shows at once
            self._timer.start()

    def _on_timer(self) -> None:
        if self._dirty:
            self._flush()
            self._timer.start()

    def _flush(self) -> None:
        self._dirty = False
        status = self._status
        for alert in status.alerts:
            if (alert.id, alert.text) not in self._seen_alerts:
                self._seen_alerts.add((alert.id, alert.text))
                if alert.notify:
                    self.alertRaised.emit(alert)
        for repo in status.repos:
            for c in repo.conflicts:
                cid = conflict_id(c)
                if cid not in self._seen_conflicts:
                    self._seen_conflicts.add(cid)
                    self.conflictFound.emit(c)
        self.statusChanged.emit(status)
