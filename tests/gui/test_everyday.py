"""Issue 19: the everyday GUI, checked through what the person sees.

A real ``Core`` over a real repository; each check reads widgets (text, enabled
state, visibility, the dialog shown), never the core's fields alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QMessageBox, QWizard

from core.status import Conflict, RepoStatus, Status, TransferStatus
from tests.conftest import git
from tests.gui.conftest import make_repo
from tests.gui.test_app import _app_with_repo, _trigger

BOUND = 30.0


def test_a_minimized_window_comes_back(make_core: Any, make_app: Any, wait: Any, run: Any,
                                       tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    win = app.open_window()
    for bring_back in (lambda: _trigger(app, "open-window"), lambda: app.tray._on_activated(
            app.tray.icon.ActivationReason.Trigger), lambda: app._on_handover([])):
        win.showMinimized()
        assert win.isMinimized()
        bring_back()
        assert win.isVisible() and not win.isMinimized()


def test_add_folder_from_the_menu_and_the_window(make_core: Any, make_app: Any, wait: Any,
                                                 run: Any, tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    _trigger(app, "add-folder")
    wz = app.add_folder_wizard
    assert wz is not None and wz.isVisible()
    assert wz.windowTitle() == "Add a folder" and "Welcome" not in wz.folder_page.title()
    assert wz.folder_page.path.text() == "", "not pre-filled with the synced folder"
    wz.close()
    win = app.open_window()
    win.add_folder_button.click()
    wz = app.add_folder_wizard
    assert wz.isVisible() and wz.folder_page.path.text() == ""
    second = tmp_path / "Second"
    wz.folder_page.path.setText(str(second))
    wz.button(QWizard.WizardButton.FinishButton).click()
    wait(lambda: not wz.isVisible() and len(app.bridge.status.repos) == 2, BOUND, "second folder")
    wait(lambda: win.repos.topLevelItemCount() == 2, BOUND)


def test_stop_syncing_asks_first(make_core: Any, make_app: Any, wait: Any, run: Any,
                                 tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    dlg = app.open_settings()
    dlg.folders.setCurrentRow(0)
    dlg.remove_folder.click()
    box = dlg.confirm
    assert box.isVisible() and "Stop syncing" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    wait(lambda: app.actions.pending == 0, 5)
    assert len(app.bridge.status.repos) == 1, "Cancel keeps the folder"
    dlg.remove_folder.click()
    stop = next(b for b in dlg.confirm.buttons() if b.text() == "Stop syncing")
    stop.click()
    wait(lambda: not app.bridge.status.repos, BOUND, "folder no longer synced")
    wait(lambda: dlg.folders.count() == 0, 5)


def test_sync_now_is_disabled_while_paused_and_the_row_says_so(make_core: Any, make_app: Any,
                                                               wait: Any, run: Any,
                                                               tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    win = app.open_window()
    wait(lambda: win.repos.topLevelItem(0).text(1) == "up to date", BOUND, "row up to date")
    _trigger(app, "pause")
    wait(lambda: not win.sync_button.isEnabled(), BOUND, "window's Sync now disabled")
    app.tray.rebuild_menu()
    assert not app.tray.named["sync-now"].isEnabled()
    # a scan that began just before the pause may still be named first, until it ends
    wait(lambda: win.repos.topLevelItem(0).text(1) == "paused", BOUND, "the row says paused")
    _trigger(app, "resume")
    wait(lambda: win.sync_button.isEnabled(), BOUND, "enabled again")
    app.tray.rebuild_menu()
    assert app.tray.named["sync-now"].isEnabled()


def test_about_shows_version_licence_and_a_link(make_core: Any, make_app: Any, wait: Any,
                                                run: Any, tmp_path: Path) -> None:
    from importlib.metadata import version

    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    _trigger(app, "about")
    about = app.about
    assert about is not None and about.isVisible()
    text = about.text.text()
    assert f"annexsync {version('annexsync')}" in text
    assert "AGPL-3.0-or-later" in text and "href=" in text
    about.close()
    app.open_window().about_button.click()
    assert about.isVisible()


def test_start_at_login_failure_stays_shown(make_core: Any, make_app: Any, wait: Any, run: Any,
                                            tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    blocker = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the autostart folder should be")
    dlg = app.open_settings()
    dlg.start_at_login.setChecked(True)
    dlg.apply()
    wait(lambda: app.actions.pending == 0, 10)
    assert dlg.message.text().startswith("Could not change start at login:"), dlg.message.text()
    assert not dlg.start_at_login.isChecked()


def test_conflict_dialog_gives_context_and_asks_before_discarding(
        make_core: Any, make_app: Any, wait: Any, run: Any, tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    folder = Path(app.bridge.status.repos[0].path)
    (folder / "notes.variant-aaaa.txt").write_text("mine\n" * 100)
    c = Conflict(repo=str(folder), path="notes.txt",
                 variants=("notes.variant-aaaa.txt", "notes.variant-bbbb.txt"))
    dlg = app.resolve_conflict(c)
    assert any("in the folder r was changed" in w.text() for w in dlg.findChildren(type(dlg.error)))
    lines = [dlg.variants.item(i).text() for i in range(dlg.variants.count())]
    assert "500 bytes" in lines[0] and "changed" in lines[0], lines
    assert "not on this device yet" in lines[1], lines
    dlg.variants.setCurrentRow(0)
    dlg.pick.click()
    box = dlg.confirm
    assert box.isVisible() and "notes.variant-bbbb.txt" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert app.actions.pending == 0 and dlg.isVisible(), "Cancel discards nothing"
    app.opened.clear()
    missing = Conflict(repo=str(folder), path="x.txt",
                       variants=("x.variant-1.txt", "x.variant-2.txt"))
    dlg2 = app.resolve_conflict(missing)
    dlg2.open_both.click()
    assert app.opened == []
    assert dlg2.error.isVisibleTo(dlg2) and dlg2.error.text().startswith("Nothing was opened")




def _batch_status(repo: str, *transfers: TransferStatus) -> Status:
    return Status(repos=(RepoStatus(path=repo, uuid="u", description="d",
                                    transfers=transfers),))


def test_transfers_show_the_path_and_overall_progress_that_does_not_restart(
        make_core: Any, make_app: Any, wait: Any, run: Any, tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    win = app.open_window()
    win.tabs.setCurrentIndex(1)
    repo = app.bridge.status.repos[0].path
    one = TransferStatus(1, repo, "photos/2024/a.jpg", "k1", "upload", "b", 500_000, 1_000_000,
                         100_000.0, "running")
    two = TransferStatus(2, repo, "photos/2025/a.jpg", "k2", "upload", "b", 0, 1_000_000)
    app.bridge.close()  # from here the window shows the values handed to it
    win.show_status(_batch_status(repo, one, two))
    assert win.transfers_model.index(0, 0).data() == "photos/2024/a.jpg"
    assert win.transfers_model.index(1, 0).data() == "photos/2025/a.jpg"
    assert win.headline.text() == "Syncing… 25%, about 15 s left"
    assert win.overall.text().startswith("Overall: 500") and "(25%)" in win.overall.text()
    # the first file is done, the second starts: the figure goes on from there
    done = TransferStatus(1, repo, "photos/2024/a.jpg", "k1", "upload", "b", 1_000_000,
                          1_000_000, 0.0, "done")
    started = TransferStatus(2, repo, "photos/2025/a.jpg", "k2", "upload", "b", 100_000,
                             1_000_000, 100_000.0, "running")
    win.show_status(_batch_status(repo, done, started))
    assert win.headline.text() == "Syncing… 55%, about 9 s left"
    assert "(55%)" in win.overall.text()


def test_activity_has_times_folds_repeats_and_survives_a_restart(
        make_core: Any, make_app: Any, wait: Any, run: Any, tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    core = app.core
    for _ in range(3):
        run(core.pause())
    run(core.resume())
    win = app.open_window()
    wait(lambda: win.activity.count() >= 2 and "Resumed syncing" in win.activity.item(0).text(),
         BOUND, "activity shown")
    lines = [win.activity.item(i).text() for i in range(win.activity.count())]
    assert lines[1].endswith("Paused syncing (×3)"), lines
    assert sum("Paused syncing" in x for x in lines) == 1, lines
    assert lines[0][:1].isdigit(), f"a time first: {lines[0]!r}"
    run(core.stop())
    later = make_core("a")  # the same config dir: a restart
    wait(lambda: any("Paused syncing (×3)" in a.text + f" (×{a.count})"
                     for a in later.status.activity_log), BOUND, "kept across the restart")
    app2 = make_app("a", core=later)
    win2 = app2.open_window()
    wait(lambda: any(win2.activity.item(i).text().endswith("Paused syncing (×3)")
                     for i in range(win2.activity.count())), BOUND, "shown after the restart")


def test_remotes_are_checked_edited_and_removed(make_core: Any, make_app: Any, wait: Any,
                                                run: Any, tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    dlg = app.open_settings()
    dlg.tabs.setCurrentIndex(1)
    dlg.remote_name.setText("my drive")
    dlg.remote_url.setText(str(tmp_path / "elsewhere"))
    dlg.add_remote_button.click()
    wait(lambda: "not a usable remote name" in dlg.message.text(), 10, "name refused")
    assert "use letters, digits, '.', '_' and '-'" in dlg.message.text()
    dlg.remote_name.setText("drive")
    dlg.add_remote_button.click()
    wait(lambda: dlg.message.text().startswith("no folder at "), 10, "missing path refused")
    assert dlg.remotes.count() == 0
    target, moved = make_repo(tmp_path / "drive"), make_repo(tmp_path / "drive2")
    dlg.remote_url.setText(str(target))
    dlg.add_remote_button.click()
    wait(lambda: dlg.remotes.count() == 1 and dlg.remotes.item(0).text().startswith("drive "),
         BOUND, "remote listed")
    dlg.remotes.setCurrentRow(0)
    dlg.remote_url.setText(str(tmp_path / "typo"))
    dlg.change_remote_button.click()
    wait(lambda: dlg.message.text().startswith("no folder at "), 10, "edit checked too")
    dlg.remote_url.setText(str(moved))
    dlg.change_remote_button.click()
    wait(lambda: app.actions.pending == 0, 10)
    folder = Path(app.bridge.status.repos[0].path)
    assert git(folder, "remote", "get-url", "drive").strip() == str(moved)
    dlg.remotes.setCurrentRow(0)
    dlg.remove_remote_button.click()
    next(b for b in dlg.confirm.buttons() if b.text() == "Remove").click()
    wait(lambda: dlg.remotes.count() == 0, BOUND, "remote gone from the list")
    assert git(folder, "remote").strip() == ""


def test_pause_for_an_hour_survives_a_restart(make_core: Any, make_app: Any, wait: Any,
                                              run: Any, tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    _trigger(app, "pause-hour")
    wait(lambda: app.bridge.status.paused_until not in (None, float("inf")), 10, "paused")
    run(app.core.stop())
    later = make_core("a")
    app2 = make_app("a", core=later)
    win = app2.open_window()
    wait(lambda: win.headline.text().startswith("Paused until "), BOUND, "still paused")
    assert not win.sync_button.isEnabled()
    app2.tray.rebuild_menu()
    assert "resume" in app2.tray.named and not app2.tray.named["sync-now"].isEnabled()
    _trigger(app2, "resume")
    wait(lambda: win.sync_button.isEnabled(), BOUND, "resumed")


def test_log_view_and_copy_diagnostics(make_core: Any, make_app: Any, wait: Any, run: Any,
                                       tmp_path: Path) -> None:
    from importlib.metadata import version

    from PySide6.QtGui import QGuiApplication

    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    run(app.core.pause())  # writes "Paused syncing" to the log
    win = app.open_window()
    win.tabs.setCurrentIndex(2)
    win.log_button.click()
    dlg = app.log_dialog
    assert dlg is not None and dlg.isVisible()
    wait(lambda: (dlg.load(), "Paused syncing" in dlg.text.toPlainText())[1], 10, "log shown")
    dlg.copy_button.click()
    copied = QGuiApplication.clipboard().text()
    assert copied.startswith(f"annexsync {version('annexsync')}\n")
    assert "annexsync: paused" in copied and "Paused syncing" in copied
    assert dlg.note.text().startswith("Diagnostics copied to the clipboard")


def test_remotes_say_how_they_are_reached(make_core: Any, make_app: Any, wait: Any, run: Any,
                                          tmp_path: Path) -> None:
    """An ssh remote says ssh (in both URL forms), a folder says folder: in the
    window's tree and in the settings' list."""
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path / "r")
    folder = app.bridge.status.repos[0].path
    other = make_repo(tmp_path / "other")
    for name, url in (("server", "ssh://nohost.invalid/srv/x"), ("scp", "me@nohost.invalid:x"),
                      ("disk", str(other))):
        run(app.core.add_remote(folder, name, url))
    win = app.open_window()

    def rows() -> dict[str, str]:
        top = win.repos.topLevelItem(0)
        if top is None:
            return {}
        return {top.child(i).text(0): top.child(i).text(2) for i in range(top.childCount())}

    wait(lambda: len(rows()) == 3, BOUND, "three remotes in the window")
    assert rows() == {"server": "ssh", "scp": "ssh", "disk": "folder"}
    dlg = app.open_settings()
    dlg.tabs.setCurrentIndex(1)
    wait(lambda: dlg.remotes.count() == 3, BOUND, "three remotes in the settings")
    listed = sorted(dlg.remotes.item(i).text() for i in range(dlg.remotes.count()))
    assert listed == ["disk (folder)", "scp (ssh)", "server (ssh)"], listed


def _alert_texts(win: Any) -> list[str]:
    return [win.alerts.item(i).text() for i in range(win.alerts.count())]


def test_added_files_are_named_once_dotfiles_too(make_core: Any, make_app: Any, wait: Any,
                                                 run: Any, tmp_path: Path) -> None:
    """One batch (written while paused): a dotfile (it goes to git, not the annex)
    is named with the others; two files of one name are told apart by their path."""
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    folder = Path(app.bridge.status.repos[0].path)
    win = app.open_window()
    run(app.core.pause(None))
    for rel in (".hidden", "a/notes.txt", "b/notes.txt"):
        (folder / rel).parent.mkdir(exist_ok=True)
        (folder / rel).write_text(f"{rel}\n")
    wait(lambda: app.bridge.status.repos[0].uncommitted >= 3, BOUND, "changes seen while paused")
    run(app.core.resume())

    def added() -> list[str]:
        return [t for t in _alert_texts(win) if "Added " in t]

    wait(lambda: bool(added()), BOUND, "the Added alert")
    (text,) = added()
    listed = text.split("Added ", 1)[1].split(", ")
    assert sorted(listed) == [".hidden", "a/notes.txt", "b/notes.txt"], text


def test_a_failed_sync_alert_says_why_and_goes_when_the_sync_works(
        make_core: Any, make_app: Any, wait: Any, run: Any, tmp_path: Path) -> None:
    app = _app_with_repo(make_core, make_app, wait, run, tmp_path)
    folder = app.bridge.status.repos[0].path
    win = app.open_window()
    run(app.core.add_remote(folder, "origin", "ssh://nohost.invalid/srv/x"))
    failed = "Failed to sync with origin: host not found"
    wait(lambda: any(t.endswith(failed) for t in _alert_texts(win)), BOUND, "the failure alert")
    other = make_repo(tmp_path / "other")
    run(app.core.set_remote_url(folder, "origin", str(other)))  # the person fixes the address
    wait(lambda: not any(failed in t for t in _alert_texts(win)), BOUND,
         "the stale alert cleared after a good sync")
    status = app.bridge.status.repos[0]
    assert [(r.name, r.reachable, r.error) for r in status.remotes] == [("origin", True, None)]
