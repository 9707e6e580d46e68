"""The screenshot script renders the views and the window in every health state
(into a temporary directory here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QImage

from core.status import Health
from gui.screenshots import capture


def test_screenshots_render(run: Any, tmp_path: Path) -> None:
    paths = run(capture(tmp_path))
    names = sorted(p.name for p in paths)
    states = [f"main-window-{h.value}.png" for h in Health] + ["main-window-error-folder-missing.png"]
    assert names == sorted(["first-run-wizard.png", "main-window-transfers.png", "main-window.png",
                            "tray-menu.png", "main-window-activity.png", "add-folder-wizard.png",
                            "conflict-dialog.png", "about.png", "pair-device-wizard.png",
                            "join-with-code-wizard.png", *states])
    for p in paths:
        img = QImage(str(p))
        assert img.width() > 150 and img.height() > 150, p
