"""The tray icon for real: Xvfb + trayer (XEmbed tray host), clicked with xdotool."""

from __future__ import annotations

import asyncio
import math
import os  # noqa: F401 - used by the requires_x condition
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QSystemTrayIcon

from core.status import Health
from tests.gui.conftest import make_repo, requires_x, until, xdotool

pytestmark = [pytest.mark.tray, requires_x]


async def _embedded(tray: Any) -> Any:
    await until(QSystemTrayIcon.isSystemTrayAvailable, 10, "a tray host")
    await until(lambda: not tray.icon.geometry().isEmpty(), 10, "the icon is embedded")
    await asyncio.sleep(0.4)  # embedding finishes after the geometry first shows
    return tray.icon.geometry()  # read again: the first value can be window-local


def test_click_opens_window_and_menu_action_pauses(make_core: Any, make_app: Any, run: Any,
                                                   wait: Any, tmp_path: Path) -> None:
    core = make_core("a")
    run(core.add_repository(str(make_repo(tmp_path / "r", {"a.txt": "a"})), create=False))
    app = make_app("a", core=core)
    wait(lambda: app.tray.health is Health.SYNCED, 30)
    geo = run(_embedded(app.tray))
    assert geo.width() > 0 and geo.x() > 0

    # Left click on the icon opens the main window.
    c = geo.center()
    xdotool("mousemove", str(c.x()), str(c.y()), "click", "1")
    wait(lambda: app.window is not None and app.window.isVisible(), 10, "window opened by a click")

    # Right click shows the menu, rebuilt from the status; a click on "Pause syncing" pauses.
    xdotool("mousemove", str(c.x()), str(c.y()), "click", "3")
    wait(lambda: app.tray.menu.isVisible(), 10, "context menu shown")
    run(asyncio.sleep(0.2))
    menu = app.tray.menu
    assert menu.actions()[0].text() == "Everything synced"
    pause = app.tray.named["pause"]
    p = menu.mapToGlobal(menu.actionGeometry(pause).center())
    xdotool("mousemove", str(p.x()), str(p.y()), "click", "1")
    wait(lambda: core.status.paused_until == math.inf, 10, "paused from the tray menu")
    wait(lambda: app.tray.health is Health.PAUSED, 5)
    wait(lambda: not menu.isVisible(), 5)

    # And "Resume syncing" from the rebuilt menu resumes.
    xdotool("mousemove", str(c.x()), str(c.y()), "click", "3")
    wait(lambda: menu.isVisible() and "resume" in app.tray.named, 10)
    run(asyncio.sleep(0.2))
    p = menu.mapToGlobal(menu.actionGeometry(app.tray.named["resume"]).center())
    xdotool("mousemove", str(p.x()), str(p.y()), "click", "1")
    wait(lambda: core.status.paused_until is None, 10, "resumed from the tray menu")
