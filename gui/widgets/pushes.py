"""The Pushes view: pushes to and from paired devices (issue 13; xmpp-sync C.5).

Renders ``Status.pushes`` (core.status.PushStatus) as given: the peer, the
direction, the state in words -- with the timeout counting down while a push
waits, and the reason when one failed -- the progress and the elapsed time.
A one-second timer re-renders while some push counts down; it stops when none
does, so an idle window costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from core.status import PushStatus, Status
from gui import format as fmt

OUTCOMES = {"done": "done", "failed": "failed: %1", "timed out": "timed out: %1",
            "aborted": "stopped: %1", "refused": "the device was busy; it will ask again"}  # fmt: skip


def push_state(p: PushStatus, now: float, tr: Callable[[str], str]) -> str:
    """What a push is doing, in words: the countdown while it waits, the reason when it failed."""
    if p.outcome is not None:
        return tr(OUTCOMES[p.outcome]).replace("%1", p.reason)
    left = None if p.deadline is None else fmt.duration(max(0.0, p.deadline - now))
    if p.phase == "running":
        what = tr("waiting for %1").replace("%1", tr(p.waiting_for)) if p.waiting_for else tr("running")
        return what + (tr(", times out in %1").replace("%1", left) if left else "")
    if p.phase == "invited":
        return tr("asked %1 to push, times out in %2").replace("%1", p.peer).replace("%2", left or "?")
    return tr("waiting for a free slot") if p.ready else tr("waiting for %1 to come online").replace("%1", p.peer)


def push_cells(p: PushStatus, now: float, tr: Callable[[str], str]) -> list[str]:
    direction = tr("sending to") if p.direction == "outgoing" else tr("receiving from")
    if p.bytes_total:
        progress = f"{min(100, int(100 * p.bytes_done / p.bytes_total))}%"
    else:
        progress = fmt.size(p.bytes_done) if p.bytes_done else ""
    elapsed = p.elapsed(now)
    return [p.peer, direction, push_state(p, now, tr), progress,
            "" if elapsed is None else fmt.duration(elapsed)]  # fmt: skip


def counting_down(status: Status) -> bool:
    return any(p.deadline is not None and p.outcome is None for p in status.pushes)


class PushesView(QWidget):
    def __init__(self, tr: Callable[[str], str], now: Callable[[], float],
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._tr, self._now = tr, now
        self._status = Status()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.empty = QLabel(tr("No pushes with paired devices yet."))
        self.tree = QTreeWidget()
        self.tree.setObjectName("pushes")
        self.tree.setRootIsDecorated(False)
        self.tree.setHeaderLabels([tr("Device"), tr("Direction"), tr("State"), tr("Progress"),
                                   tr("Elapsed")])  # fmt: skip
        lay.addWidget(self.empty)
        lay.addWidget(self.tree, 1)
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(lambda: self._render())

    def show_status(self, status: Status) -> None:
        self._status = status
        self._render()
        if counting_down(status):
            self._ticker.start()
        else:
            self._ticker.stop()

    def _render(self) -> None:
        now = self._now()
        rows = [push_cells(p, now, self._tr) for p in self._status.pushes]
        self.empty.setVisible(not rows)
        if rows == self.texts():
            return
        self.tree.clear()
        for p, cells in zip(self._status.pushes, rows, strict=True):
            item = QTreeWidgetItem(self.tree, cells)
            item.setToolTip(0, p.repo)
            item.setToolTip(2, cells[2])

    def texts(self) -> list[list[str]]:
        """The cells as shown (for tests and accessibility)."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            assert item is not None
            out.append([item.text(c) for c in range(5)])
        return out
