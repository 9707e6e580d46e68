"""Alerts: short messages for the window and, for some, desktop notifications.

Spec: assistant-behaviour.md 5.2 (alerts combine by name, change tense, about
a dozen are kept), 8 (Message/Error class with high priority become
notifications; activity only shows in the window).

Theory of operation
-------------------
``AlertBook`` keeps at most ``keep`` alerts, newest first.  An alert added
with a ``name`` replaces the live alert of the same name (same id, new text
and time), so "Added a, b" becomes "Added a, b, c" and "Syncing with X"
becomes "Synced with X" instead of piling up.  ``dismiss`` removes one (the
person closed it); ``clear`` removes the one of a name, and ``clear_repo``
those about a folder, when their cause is gone (issue 19: a "Failed to sync
with X" must not outlive the next good sync with X).  The clock is injected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.status import Alert, AlertLevel

logger = logging.getLogger(__name__)

KEEP = 12


@dataclass
class _Entry:
    alert: Alert
    name: str | None


class AlertBook:
    def __init__(self, clock: Callable[[], float], keep: int = KEEP) -> None:
        self.clock = clock
        self.keep = keep
        self._entries: list[_Entry] = []
        self._next = 1

    def add(self, level: AlertLevel, text: str, *, name: str | None = None,
            notify: bool = False, repo: str | None = None) -> Alert:
        now = self.clock()
        for i, e in enumerate(self._entries):
            if name is not None and e.name == name:
                alert = replace(e.alert, level=level, text=text, time=now, notify=notify,
                                repo=repo)
                del self._entries[i]
                self._entries.insert(0, _Entry(alert, name))
                return alert
        alert = Alert(self._next, level, text, now, notify, repo)
        self._next += 1
        self._entries.insert(0, _Entry(alert, name))
        del self._entries[self.keep:]
        return alert

    def dismiss(self, alert_id: int) -> bool:
        for i, e in enumerate(self._entries):
            if e.alert.id == alert_id:
                del self._entries[i]
                return True
        return False

    def clear(self, name: str) -> bool:
        """Remove the alert named ``name``: what it said is no longer true."""
        kept = [e for e in self._entries if e.name != name]
        cleared, self._entries = len(kept) != len(self._entries), kept
        return cleared

    def clear_repo(self, repo: str) -> bool:
        """Remove the alerts about folder ``repo`` (it is no longer synced)."""
        kept = [e for e in self._entries if e.alert.repo != repo]
        cleared, self._entries = len(kept) != len(self._entries), kept
        return cleared

    def alerts(self) -> tuple[Alert, ...]:
        return tuple(e.alert for e in self._entries)
