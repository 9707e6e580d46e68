"""The About dialog: version, licence and links, all from the package metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, metadata

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from core.cli import version
from gui.icons import app_icon

DOCS = "https://git-annex.branchable.com/"  # the format annexsync keeps compatible with


def licence() -> str:
    """The licence the package declares (pyproject.toml), or a plain 'unknown'."""
    try:
        meta = metadata("annexsync")
    except PackageNotFoundError:
        return "unknown"
    found = meta.get_all("License-Expression") or meta.get_all("License") or ["unknown"]
    return str(found[0])


class AboutDialog(QDialog):
    """Version, licence, links; non-modal, one kept by the app."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("about-dialog")
        self.setWindowTitle(self.tr("About annexsync"))
        self.setWindowIcon(app_icon())
        lay = QVBoxLayout(self)
        self.text = QLabel(
            self.tr("<h3>annexsync %1</h3><p>Keeps folders in sync between your devices, "
                    "stored as git-annex repositories.</p><p>Licence: %2</p>"
                    "<p><a href=\"%3\">git-annex</a></p>")
            .replace("%1", version()).replace("%2", licence()).replace("%3", DOCS))
        self.text.setObjectName("about-text")
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setOpenExternalLinks(True)
        self.text.setWordWrap(True)
        lay.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
