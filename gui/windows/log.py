"""The log view: the newest lines of ``annexsync.log`` and a *Copy diagnostics* button.

Diagnostics are what a bug report needs and nothing secret: versions (annexsync,
Python, Qt, PySide6, platform), the state in words (``Status.tooltip``), then the
log's newest lines.  The log holds no passwords (``core.secrets`` never logs them).
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import PySide6
from PySide6.QtCore import qVersion
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.cli import version
from core.settings import LOG_FILE
from core.status import Status

TAIL_LINES = 400


def log_tail(config_dir: Path | None, lines: int = TAIL_LINES) -> str:
    """The newest ``lines`` of the log, or a sentence saying why there is none."""
    if config_dir is None:
        return "(no log: no config directory)"
    path = config_dir / LOG_FILE
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 256_000))
            text = f.read().decode("utf-8", errors="replace")
    except OSError as e:
        return f"(no log at {path}: {e.strerror})"
    return "\n".join(text.splitlines()[-lines:])


def diagnostics(status: Status, config_dir: Path | None, now: float) -> str:
    """Versions, state and log tail as one text for a bug report."""
    head = [
        f"annexsync {version()}",
        f"Python {sys.version.split()[0]}, Qt {qVersion()}, PySide6 {PySide6.__version__}",
        f"platform {platform.platform()}",
        f"config {config_dir}",
        status.tooltip(now),
        "--- log ---",
    ]
    return "\n".join(head) + "\n" + log_tail(config_dir)


class LogDialog(QDialog):
    """The log's newest lines; *Copy diagnostics* puts them, with versions, on the clipboard."""

    def __init__(self, status: Callable[[], Status], config_dir: Path | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._status, self._config_dir = status, config_dir
        self.setObjectName("log-dialog")
        self.setWindowTitle(self.tr("annexsync log"))
        self.resize(700, 420)
        lay = QVBoxLayout(self)
        self.text = QPlainTextEdit()
        self.text.setObjectName("log")
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        lay.addWidget(self.text, 1)
        self.note = QLabel()
        self.note.setObjectName("copied")
        lay.addWidget(self.note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton(self.tr("Copy diagnostics"))
        self.copy_button.setObjectName("copy-diagnostics")
        self.copy_button.clicked.connect(self.copy)
        refresh = QPushButton(self.tr("Refresh"))
        refresh.clicked.connect(self.load)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(refresh, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.load()

    def load(self) -> None:
        """Show the log's newest lines, scrolled to the end."""
        self.text.setPlainText(log_tail(self._config_dir))
        bar = self.text.verticalScrollBar()
        bar.setValue(bar.maximum())

    def copy(self) -> str:
        """Put the diagnostics on the clipboard; returns them."""
        text = diagnostics(self._status(), self._config_dir, time.time())
        QGuiApplication.clipboard().setText(text)
        self.note.setText(self.tr("Diagnostics copied to the clipboard (%1 lines).")
                          .replace("%1", str(text.count("\n") + 1)))
        return text
