"""First-run wizard: make a new synced folder or adopt an existing repository.

Shown when the settings list no repository.  Finishing calls
``Core.add_repository``; the wizard stays open (with the core's message) when
the core refuses, and closes once the core accepted the folder.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from gui.actions import Actions
from gui.icons import app_icon


def default_folder() -> str:
    """Where a new synced folder goes by default (``~/Annex``)."""
    return str(Path.home() / "Annex")


class FolderPage(QWizardPage):
    """Choose: create a new folder, or use an existing git-annex repository.

    The first run welcomes the person and offers ``~/Annex``; adding another folder
    later (issue 19) says so and starts with an empty path, never a synced folder.
    """

    def __init__(self, parent: QWidget | None = None, *, first_run: bool = True) -> None:
        super().__init__(parent)
        if first_run:
            self.setTitle(self.tr("Welcome to annexsync"))
            self.setSubTitle(self.tr("Choose the folder to keep in sync between your devices."))
        else:
            self.setTitle(self.tr("Add a folder"))
            self.setSubTitle(self.tr("Choose another folder to keep in sync."))
        lay = QVBoxLayout(self)
        self.create_new = QRadioButton(self.tr("Create a new synced folder"))
        self.create_new.setObjectName("create-new")
        self.existing = QRadioButton(self.tr("Use an existing git-annex repository"))
        self.existing.setObjectName("use-existing")
        self.create_new.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.create_new)
        group.addButton(self.existing)
        lay.addWidget(self.create_new)
        lay.addWidget(self.existing)

        lay.addWidget(QLabel(self.tr("Folder:")))
        row = QHBoxLayout()
        self.path = QLineEdit(default_folder() if first_run else "")
        self.path.setPlaceholderText(self.tr("a folder to sync"))
        self.path.setObjectName("folder")
        browse = QPushButton(self.tr("Browse…"))
        browse.clicked.connect(self._browse)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        lay.addLayout(row)

        lay.addWidget(QLabel(self.tr("Name of this device (shown on your other devices):")))
        self.description = QLineEdit(socket.gethostname())
        self.description.setObjectName("description")
        lay.addWidget(self.description)
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.hide()
        lay.addWidget(self.error)
        lay.addStretch(1)
        self.path.textChanged.connect(self.completeChanged)

    def isComplete(self) -> bool:
        """Finish is enabled once a folder is named."""
        return bool(self.path.text().strip())

    def _browse(self) -> None:
        start = self.path.text() or str(Path.home())
        chosen = QFileDialog.getExistingDirectory(self, self.tr("Choose a folder"), start)
        if chosen:
            self.path.setText(chosen)

    def show_error(self, text: str) -> None:
        """Show why the core refused the folder."""
        self.error.setText(text)
        self.error.setVisible(bool(text))


class FirstRunWizard(QWizard):
    """Creates or adopts the first repository."""

    def __init__(self, actions: Actions, parent: QWidget | None = None, *,
                 first_run: bool = True) -> None:
        super().__init__(parent)
        self.commands = actions
        self.setObjectName("first-run-wizard" if first_run else "add-folder-wizard")
        self.setWindowTitle(self.tr("Set up annexsync") if first_run else self.tr("Add a folder"))
        self.setWindowIcon(app_icon())
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.folder_page = FolderPage(first_run=first_run)
        self.addPage(self.folder_page)
        self.setButtonText(QWizard.WizardButton.FinishButton, self.tr("Start syncing"))
        self.resize(520, 360)
        self._busy = False

    def choice(self) -> tuple[str, bool, str | None]:
        """The folder (absolute), whether to create a repository, and the description."""
        path = os.path.abspath(os.path.expanduser(self.folder_page.path.text().strip()))
        desc = self.folder_page.description.text().strip() or None
        return path, self.folder_page.create_new.isChecked(), desc

    def accept(self) -> None:
        """Ask the core to add the folder; close only once it accepted."""
        if self._busy:
            return
        path, create, desc = self.choice()
        self._busy = True
        self.button(QWizard.WizardButton.FinishButton).setEnabled(False)
        self.folder_page.show_error("")
        task = self.commands.add_repository(path, create=create, description=desc)

        def done(_: object) -> None:
            self._busy = False
            self.button(QWizard.WizardButton.FinishButton).setEnabled(True)
            if task.cancelled():
                return
            exc = task.exception()
            if exc is None:
                QWizard.accept(self)
            else:
                self.folder_page.show_error(str(exc))

        task.add_done_callback(done)
