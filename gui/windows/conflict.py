"""The conflict resolver: keep both versions, pick one, or open both to compare.

git-annex resolves a conflicting change by keeping each side as a
``name.variant-XXXX`` file; nothing is lost.  This dialog lets the user keep
both (acknowledge), or choose the version that takes the original name
(``Core.resolve_conflict``).  It closes when the command was accepted.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.status import Conflict
from gui.actions import Actions


class ConflictDialog(QDialog):
    """Resolves one conflict."""

    def __init__(self, conflict: Conflict, actions: Actions, open_file: Callable[[str], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.conflict, self.commands, self._open_file = conflict, actions, open_file
        self.setObjectName("conflict-dialog")
        self.setWindowTitle(self.tr("Conflicting versions of %1").replace("%1", conflict.path))
        lay = QVBoxLayout(self)
        text = QLabel(self.tr(
            "“%1” was changed on two devices. Both versions are kept as separate files. "
            "Keep both, or pick the version that keeps the name.").replace("%1", conflict.path))
        text.setWordWrap(True)
        lay.addWidget(text)
        self.variants = QListWidget()
        self.variants.setObjectName("variants")
        for v in conflict.variants:
            item = QListWidgetItem(os.path.basename(v))
            item.setToolTip(v)
            self.variants.addItem(item)
        self.variants.setCurrentRow(0)
        lay.addWidget(self.variants)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.hide()
        lay.addWidget(self.error)

        buttons = QDialogButtonBox()
        self.keep_both = QPushButton(self.tr("Keep both"))
        self.pick = QPushButton(self.tr("Keep the selected one"))
        self.open_both = QPushButton(self.tr("Open both"))
        buttons.addButton(self.keep_both, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.pick, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.open_both, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        # Our own slots decide when to close; the box's accepted signal is not used.
        self.keep_both.clicked.connect(lambda: self.resolve(None))
        self.pick.clicked.connect(lambda: self.resolve(self.selected()))
        self.open_both.clicked.connect(self.open_all)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def selected(self) -> str | None:
        """The variant path the user picked."""
        row = self.variants.currentRow()
        return self.conflict.variants[row] if 0 <= row < len(self.conflict.variants) else None

    def resolve(self, keep: str | None) -> None:
        """Send the choice to the core; close when accepted, show the error otherwise."""
        self.keep_both.setEnabled(False)
        self.pick.setEnabled(False)
        task = self.commands.resolve_conflict(self.conflict.repo, self.conflict.path, keep)

        def done(t: object) -> None:
            self.keep_both.setEnabled(True)
            self.pick.setEnabled(True)
            if task.cancelled():
                return
            exc = task.exception()
            if exc is None:
                self.accept()
            else:
                self.error.setText(str(exc))
                self.error.show()

        task.add_done_callback(done)

    def open_all(self) -> None:
        """Open every version in the default application."""
        for v in self.conflict.variants:
            self._open_file(os.path.join(self.conflict.repo, v))
