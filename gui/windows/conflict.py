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
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.status import Conflict
from gui import format as fmt
from gui.actions import Actions


class ConflictDialog(QDialog):
    """Resolves one conflict."""

    def __init__(self, conflict: Conflict, actions: Actions, open_file: Callable[[str], object],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.conflict, self.commands, self._open_file = conflict, actions, open_file
        self.setObjectName("conflict-dialog")
        self.setWindowTitle(self.tr("Conflicting versions of %1").replace("%1", conflict.path))
        lay = QVBoxLayout(self)
        folder = os.path.basename(conflict.repo.rstrip("/")) or conflict.repo
        text = QLabel(self.tr(
            "“%1” in the folder %2 was changed on two devices. Both versions are kept as "
            "separate files. Keep both, or pick the version that keeps the name.")
            .replace("%1", conflict.path).replace("%2", folder))
        text.setWordWrap(True)
        lay.addWidget(text)
        self.variants = QListWidget()
        self.variants.setObjectName("variants")
        for v in conflict.variants:
            item = QListWidgetItem(self.describe(v))
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
        self.pick.clicked.connect(self.confirm_pick)
        self.open_both.clicked.connect(self.open_all)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def describe(self, variant: str) -> str:
        """A version's line: its name, the device it came from, size and date (its
        content may not be here yet)."""
        name = os.path.basename(variant)
        origin = self.conflict.origin(variant)
        if origin:
            name = self.tr("%1, from %2").replace("%1", name).replace("%2", origin)
        try:
            st = os.stat(os.path.join(self.conflict.repo, variant))
        except OSError:
            return self.tr("%1 — content not on this device yet").replace("%1", name)
        return self.tr("%1 — %2, changed %3").replace("%1", name).replace(
            "%2", fmt.size(st.st_size)).replace("%3", fmt.clock(st.st_mtime))

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

    def confirm_pick(self) -> None:
        """Keeping one version discards the others: ask first (issue 19)."""
        keep = self.selected()
        if keep is None:
            return
        others = [os.path.basename(v) for v in self.conflict.variants if v != keep]
        box = QMessageBox(QMessageBox.Icon.Warning, self.tr("Discard the other version?"),
                          self.tr("Keep “%1” as %2 and delete %3?").replace(
                              "%1", os.path.basename(keep)).replace("%2", self.conflict.path)
                          .replace("%3", ", ".join(others)),
                          QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("confirm-discard")
        discard = box.addButton(self.tr("Keep it, delete the others"),
                                QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda _r: self.resolve(keep) if box.clickedButton() is discard
                             else None)
        self.confirm = box
        box.open()

    def open_all(self) -> None:
        """Open every version whose content is here; say so when none could be opened."""
        opened = 0
        for v in self.conflict.variants:
            path = os.path.join(self.conflict.repo, v)
            if os.path.exists(path) and self._open_file(path) is not False:
                opened += 1
        if opened == 0:
            self.error.setText(self.tr("Nothing was opened: neither version's content is on "
                                       "this device yet, or no application opens it."))
        elif opened < len(self.conflict.variants):
            self.error.setText(self.tr("Opened %1 of %2 versions; the others' content is not "
                                       "on this device yet.").replace("%1", str(opened))
                               .replace("%2", str(len(self.conflict.variants))))
        else:
            self.error.setText("")
        self.error.setVisible(bool(self.error.text()))
