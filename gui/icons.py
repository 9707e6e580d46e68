"""Icons for the tray states and the app, from the SVGs in ``resources/``.

Each tray state has its own shape as well as its own colour (so it reads for
colour-blind users and in monochrome panels).  ``syncing`` gets a progress arc
drawn over it.  A missing resource degrades to a drawn shape (null object)
rather than an empty icon: an empty tray icon is invisible and unclickable.
"""

from __future__ import annotations

import logging
import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap

from core.status import Health

logger = logging.getLogger(__name__)

def _resources() -> Path:
    """resources/ of a source checkout, else where the package installed it."""
    checkout = Path(__file__).resolve().parent.parent / "resources"
    installed = Path(sys.prefix) / "share" / "annexsync"
    return checkout if checkout.is_dir() else installed


RESOURCES = _resources()
ICON_DIR = RESOURCES / "icons"

# Fallback colours, only used when the SVG is missing.
_FALLBACK = {
    Health.SYNCED: "#2e9d4f",
    Health.SYNCING: "#2f7fd8",
    Health.WAITING: "#e0a100",
    Health.OFFLINE: "#8a9099",
    Health.PAUSED: "#6b7a99",
    Health.ATTENTION: "#f08c00",
    Health.ERROR: "#d62f2f",
    Health.SETUP: "#3b5b92",
    Health.STOPPED: "#3d3f45",
}


def state_path(health: Health) -> Path:
    """The SVG file for a tray state."""
    return ICON_DIR / f"tray-{health.name.lower()}.svg"


@cache
def state_icon(health: Health) -> QIcon:
    """The tray icon of a state."""
    path = state_path(health)
    if path.is_file():
        return QIcon(str(path))
    logger.warning("missing icon %s; drawing a plain one", path)
    pm = QPixmap(64, 64)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor(_FALLBACK[health]))
    p.drawEllipse(4, 4, 56, 56)
    p.end()
    return QIcon(pm)


def progress_icon(fraction: float) -> QIcon:
    """The syncing icon with a progress ring (``fraction`` 0..1) around it."""
    size = 64
    pm = state_icon(Health.SYNCING).pixmap(size, size)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    rect = QRectF(4, 4, size - 8, size - 8)
    p.setPen(QPen(QColor(0, 0, 0, 110), 8))
    p.drawArc(rect, 0, 360 * 16)
    p.setPen(QPen(QColor("#34c759"), 6, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap))
    p.drawArc(rect, 90 * 16, -int(360 * 16 * max(0.0, min(1.0, fraction))))
    p.end()
    return QIcon(pm)


@cache
def app_icon() -> QIcon:
    """The application icon (windows, the .desktop entry)."""
    path = RESOURCES / "annexsync.svg"
    return QIcon(str(path)) if path.is_file() else state_icon(Health.SYNCED)
