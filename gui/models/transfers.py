"""The transfers table: one row per transfer in the newest status.

Rows are keyed by transfer id, so a progress update changes cells in place
(``dataChanged``) instead of resetting the model -- the selection survives and a
long queue does not flicker.  A row names the file by its path inside the folder.

``BatchProgress`` is the overall progress of one batch: every transfer seen from
the moment one is queued or running until none is.  Finished files stay counted,
so the figure never starts again at 0 % for each file (issue 19); the time left
is the bytes left over the running transfers' speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from core.status import Status, TransferStatus
from gui import format as fmt

Index = QModelIndex | QPersistentModelIndex

FILE, DIRECTION, PROGRESS, SPEED, STATE = range(5)
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 1  # 0..100, or -1 when the size is unknown
TRANSFER_ROLE = Qt.ItemDataRole.UserRole + 2  # the TransferStatus


@dataclass(frozen=True)
class Overall:
    """One batch's progress: bytes done of bytes in total, seconds left (None: unknown)."""

    done: int
    total: int
    eta: float | None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class BatchProgress:
    """Overall progress over the current batch of transfers (see the module header)."""

    def __init__(self) -> None:
        self._batch: dict[int, TransferStatus] = {}

    def update(self, status: Status) -> Overall | None:
        """Take a snapshot; the batch's progress, or None when nothing is moving."""
        transfers = [t for r in status.repos for t in r.transfers]
        active = [t for t in transfers if t.state in ("queued", "running")]
        if not active:
            self._batch.clear()
            return None
        for t in transfers:
            if t.state in ("queued", "running") or t.id in self._batch:
                self._batch[t.id] = t
        counted = [t for t in self._batch.values()
                   if t.state not in ("failed", "cancelled") and t.bytes_total]
        total = sum(t.bytes_total or 0 for t in counted)
        done = sum((t.bytes_total or 0) if t.state == "done" else min(t.bytes_done, t.bytes_total or 0)
                   for t in counted)
        speed = sum(t.speed for t in active if t.state == "running")
        return Overall(done, total, (total - done) / speed if speed > 0 else None)


class TransfersModel(QAbstractTableModel):
    """Transfers of every repository, in the order the core lists them."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[TransferStatus] = []

    def set_status(self, status: Status) -> None:
        """Show the transfers of a new snapshot."""
        rows = [t for r in status.repos for t in r.transfers]
        if [t.id for t in rows] == [t.id for t in self._rows]:
            changed = [i for i, (a, b) in enumerate(zip(self._rows, rows, strict=True)) if a != b]
            self._rows = rows
            if changed:
                self.dataChanged.emit(self.index(min(changed), 0),
                                      self.index(max(changed), self.columnCount() - 1))
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def transfer(self, row: int) -> TransferStatus:
        """The transfer shown in ``row``."""
        return self._rows[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 5

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or role != Qt.ItemDataRole.DisplayRole:
            return None
        return (self.tr("File"), self.tr("Direction"), self.tr("Progress"), self.tr("Speed"),
                self.tr("State"))[section]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        t = self._rows[index.row()]
        col = index.column()
        if role == TRANSFER_ROLE:
            return t
        if role == PROGRESS_ROLE:
            if t.state != "running":
                return 100 if t.state == "done" else 0
            return int(100 * t.bytes_done / t.bytes_total) if t.bytes_total else -1
        if role == Qt.ItemDataRole.ToolTipRole:
            return t.error or t.path
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col == FILE:
            return t.path  # inside the folder: two photos/IMG_1.jpg stay apart
        if col == DIRECTION:
            arrow = "↓" if t.direction == "download" else "↑"
            what = self.tr("from %1") if t.direction == "download" else self.tr("to %1")
            return f"{arrow} {what.replace('%1', t.remote)}"
        if col == PROGRESS:
            if t.state == "queued":
                return self.tr("queued (%1)").replace("%1", fmt.size(t.bytes_total))
            if t.bytes_total:
                return self.tr("%1% of %2").replace("%1", str(int(100 * t.bytes_done / t.bytes_total))
                                                    ).replace("%2", fmt.size(t.bytes_total))
            return fmt.size(t.bytes_done)
        if col == SPEED:
            return fmt.speed(t.speed) if t.state == "running" else ""
        return self.state_text(t)

    def state_text(self, t: TransferStatus) -> str:
        """The state column, translated."""
        return {
            "queued": self.tr("queued"),
            "running": self.tr("running"),
            "done": self.tr("done"),
            "failed": self.tr("failed"),
            "cancelled": self.tr("cancelled"),
        }[t.state]
