"""The screenshot script renders the three views (into a temporary directory here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QImage

from gui.screenshots import capture


def test_screenshots_render(run: Any, tmp_path: Path) -> None:
    paths = run(capture(tmp_path))
    names = sorted(p.name for p in paths)
    assert names == ["first-run-wizard.png", "join-with-code-wizard.png",
                     "main-window-transfers.png", "main-window.png", "pair-device-wizard.png",
                     "tray-menu.png"]
    for p in paths:
        img = QImage(str(p))
        assert img.width() > 150 and img.height() > 150, p
