"""The tray app over a real Core: first run, tray menu actions, the main window."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QWizard

from core.settings import load_settings
from core.status import Health
from tests.gui.conftest import make_repo
from tests.gui.test_honest import shown_health


def test_first_run_wizard_creates_a_repository(make_app: Any, wait: Any, tmp_path: Path,
                                               config_root: Path) -> None:
    app = make_app("a")
    wizard = app.wizard
    assert wizard is not None and wizard.isVisible(), "first run opens the wizard"
    folder = tmp_path / "Synced"
    wizard.folder_page.path.setText(str(folder))
    wizard.folder_page.description.setText("test laptop")
    assert wizard.folder_page.create_new.isChecked()
    wizard.button(QWizard.WizardButton.FinishButton).click()
    wait(lambda: not wizard.isVisible(), 20, "wizard closes once the core accepted")
    wait(lambda: [r.path for r in app.bridge.status.repos] == [str(folder)], 20, "repo in status")
    assert (folder / ".git").is_dir()
    assert load_settings(config_root / "a").repositories == (str(folder),)
    wait(lambda: app.bridge.status.repos[0].description == "test laptop", 20, "description")


def test_wizard_shows_the_cores_refusal(make_app: Any, wait: Any, tmp_path: Path) -> None:
    app = make_app("a")
    wizard = app.wizard
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    wizard.folder_page.existing.setChecked(True)
    wizard.folder_page.path.setText(str(plain))
    wizard.button(QWizard.WizardButton.FinishButton).click()
    wait(lambda: wizard.folder_page.error.isVisibleTo(wizard) and wizard.folder_page.error.text(), 20)
    assert wizard.isVisible()
    assert app.bridge.status.repos == ()


def test_no_wizard_when_a_repository_is_configured(make_core: Any, make_app: Any, wait: Any,
                                                   tmp_path: Path, run: Any) -> None:
    core = make_core("a")
    folder = make_repo(tmp_path / "r")
    run(core.add_repository(str(folder), create=False))
    app = make_app("a", core=core)
    assert app.wizard is None


def _app_with_repo(make_core: Any, make_app: Any, wait: Any, run: Any, tmp_path: Path) -> Any:
    core = make_core("a")
    folder = make_repo(tmp_path / "r", {"hello.txt": "hello\n"})
    run(core.add_repository(str(folder), create=False))
    app = make_app("a", core=core)
    wait(lambda: app.bridge.status.repos, 20)
    return app


def _trigger(app: Any, name: str) -> None:
    app.tray.rebuild_menu()  # what aboutToShow does
    action = app.tray.named[name]
    assert action.isEnabled(), name
    action.trigger()


def test_tray_menu_actions_change_the_core(make_core: Any, make_app: Any, wait: Any, run: Any,
                                           tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    core = app.core
    wait(lambda: app.tray.health is Health.SYNCED, 30, "settles to synced")

    _trigger(app, "pause")
    wait(lambda: core.status.paused_until == math.inf, 10, "paused indefinitely")
    wait(lambda: app.tray.health is Health.PAUSED, 5)
    assert app.tray.icon.toolTip().startswith("annexsync: paused")
    app.tray.rebuild_menu()
    assert "pause" not in app.tray.named and app.tray.named["status"].text() == "Paused"

    _trigger(app, "resume")
    wait(lambda: core.status.paused_until is None, 10, "resumed")

    before = time.time()
    _trigger(app, "pause-hour")
    wait(lambda: core.status.paused_until not in (None, math.inf), 10)
    assert before + 3590 < core.status.paused_until < time.time() + 3610
    app.tray.rebuild_menu()
    assert app.tray.named["status"].text().startswith("Paused until ")
    _trigger(app, "resume")
    wait(lambda: core.status.paused_until is None, 10)

    _trigger(app, "pause-tomorrow")
    wait(lambda: core.status.paused_until not in (None, math.inf), 10)
    assert time.localtime(core.status.paused_until).tm_hour == 8
    _trigger(app, "resume")
    wait(lambda: core.status.paused_until is None, 10)

    # Sync now: a new file is committed (the core's activity says so) and the icon returns to synced.
    folder = Path(app.bridge.status.repos[0].path)
    (folder / "new.txt").write_text("new\n")
    _trigger(app, "sync-now")
    wait(lambda: app.actions.pending == 0, 10)
    wait(lambda: app.tray.health is Health.SYNCED and app.bridge.status.repos[0].uncommitted == 0,
         30, "new file committed")

    _trigger(app, "open-window")
    assert app.window is not None and app.window.isVisible()
    _trigger(app, "open-folder")
    assert app.opened == [str(folder)]
    _trigger(app, "settings")
    assert app.settings_dialog is not None and app.settings_dialog.isVisible()
    _trigger(app, "quit")
    run(app.wait_quit())


def test_icon_never_shows_synced_while_work_is_pending(make_core: Any, make_app: Any, wait: Any,
                                                       run: Any, tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    wait(lambda: app.tray.health is Health.SYNCED, 30)
    core_seen: list[Health] = []
    app.core.subscribe(lambda s: core_seen.append(s.health(time.time())))
    shown: list[tuple[Health | None, Health, bool]] = []
    app.bridge.statusChanged.connect(lambda s: shown.append(  # the icon's pixels, not a field
        (shown_health(app), s.health(app.bridge.now()), s.repos[0].busy())))
    folder = Path(app.bridge.status.repos[0].path)
    for i in range(5):
        (folder / f"f{i}.txt").write_text(str(i))
    wait(lambda: Health.SYNCING in core_seen, 20, "the core reports the pending work")
    wait(lambda: shown_health(app) is Health.SYNCED and not app.bridge.status.repos[0].busy(), 30)
    assert shown
    for icon, health, busy in shown:
        assert icon is health  # the icon follows Status.health at every update ...
        assert not (busy and icon is Health.SYNCED)  # ... so never "synced" with work pending


def test_without_a_tray_host_the_window_opens_and_says_why(
        make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No tray host (a desktop without a system tray): the person still sees annexsync."""
    import gui.app

    monkeypatch.setattr(gui.app.QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: False))
    app = make_app("a")
    assert app.window is not None and app.window.isVisible()
    assert "No system tray" in app.window.statusBar().currentMessage()
