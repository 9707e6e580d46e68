"""Issue 18: an honest tray, checked through what the person sees.

Each state is reached with a real ``Core`` on real repositories, and each
check reads what is on screen: the icon actually set on the
``QSystemTrayIcon`` (its rendered pixels compared with the state's icon, not
a field the tray keeps), its tooltip, the main window's headline, the tray
menu's lines -- and ``annexsync status --json`` asked over the instance
socket by a real subprocess must name the same state as the icon.
Notifications are recorded where they reach Qt: ``showMessage`` of the tray's
``QSystemTrayIcon`` instance.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QIcon, QImage

from core.status import Conflict, Health
from gui.icons import state_icon
from tests.conftest import annex, git
from tests.gui.conftest import make_repo

BOUND = 40.0


# --- what the person sees ---------------------------------------------------------


def _image(icon: QIcon) -> QImage:
    return icon.pixmap(32, 32).toImage().convertToFormat(QImage.Format.Format_ARGB32)


def shown_health(app: Any) -> Health | None:
    """The state whose icon the tray icon shows now, read from its pixels."""
    img = _image(app.tray.icon.icon())
    return next((h for h in Health if _image(state_icon(h)) == img), None)


def cli_json(config_dir: Path, run: Any) -> dict[str, Any]:
    """``annexsync status --json`` as a subprocess (in a thread: the core keeps answering)."""
    cmd = [sys.executable, "-m", "core.cli", "--config-dir", str(config_dir), "status", "--json"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    p = run(asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=60,
                              env=env))
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert isinstance(data, dict)
    return data


def sees(app: Any, health: Health, tooltip: str, headline: str, run: Any,
         config_dir: Path) -> None:
    """The icon, tooltip, window headline and ``status --json`` all say ``health``."""
    assert shown_health(app) is health, (shown_health(app), app.bridge.status)
    assert app.tray.icon.toolTip().split("\n")[0] == tooltip
    win = app.open_window()
    assert win.headline.text() == headline
    data = cli_json(config_dir, run)
    assert data["running"] is True and data["health"] == health.value
    assert "annexsync: " + data["headline"] == tooltip


def _wait_shown(app: Any, wait: Any, health: Health, what: str) -> None:
    wait(lambda: shown_health(app) is health, BOUND, what)


def _wait_settled(app: Any, wait: Any, run: Any, config_dir: Path, health: Health,
                  what: str) -> None:
    """The icon shows ``health`` and ``status --json`` says it too: a round that
    follows (a push of what the last one logged) may show another state for a
    moment, and the CLI, a process of its own, answers later than the icon."""
    deadline = time.monotonic() + BOUND
    while True:
        _wait_shown(app, wait, health, what)
        if cli_json(config_dir, run)["health"] == health.value:
            return
        assert time.monotonic() < deadline, f"status --json never said {health.value}"


# --- scenarios ---------------------------------------------------------------------


def test_no_folder_is_not_a_green_check(make_app: Any, wait: Any, run: Any,
                                        config_root: Path) -> None:
    app = make_app("a")
    _wait_shown(app, wait, Health.SETUP, "the no-folder icon")
    sees(app, Health.SETUP, "annexsync: no folder synced yet", "No folders synced yet", run,
         config_root / "a")


def _app_with_repo(make_core: Any, make_app: Any, wait: Any, run: Any, folder: Path,
                   **core_kw: Any) -> Any:
    core = make_core("a", **core_kw)
    make_repo(folder, {"hello.txt": "hello\n"})
    run(core.add_repository(str(folder), create=False))
    app = make_app("a", core=core)
    _wait_shown(app, wait, Health.SYNCED, "synced at first")
    return app


def record_messages(app: Any) -> list[tuple[str, str]]:
    """Every (title, text) handed to the tray's ``QSystemTrayIcon.showMessage``: the Qt
    call is wrapped on the instance, and the real call still happens."""
    got: list[tuple[str, str]] = []
    icon = app.tray.icon
    real = icon.showMessage

    def show(title: str, text: str, *rest: Any) -> None:
        got.append((title, text))
        real(title, text, *rest)

    icon.showMessage = show
    return got


def test_failing_remote_is_an_error_in_one_short_line_and_notifies(
        make_core: Any, make_app: Any, wait: Any, run: Any, tmp_path: Path,
        config_root: Path) -> None:
    folder = tmp_path / "r"
    app = _app_with_repo(make_core, make_app, wait, run, folder)
    recorded = record_messages(app)
    run(app.core.add_remote(str(folder), "origin", "ssh://nohost.invalid/srv/x"))
    _wait_shown(app, wait, Health.ERROR, "the error icon for a remote on an unknown host")
    sees(app, Health.ERROR, "annexsync: origin: host not found", "Error: origin: host not found",
         run, config_root / "a")
    # The menu: one short line for the remote, no growth (it was ~860 px wide).
    app.tray.rebuild_menu()
    line = app.tray.named["remote-0-0"].text()
    assert line.strip() == "origin: failing: host not found" and "\n" not in line
    assert app.tray.named["status"].text() == "Error: origin: host not found"
    assert app.tray.menu.sizeHint().width() < 400
    # The window: the short reason in the tree, git's words in the details.
    win = app.open_window()
    child = win.repos.topLevelItem(0).child(0)
    assert child.text(1) == "failing: host not found"
    child.setSelected(True)
    assert win.details.isVisibleTo(win) and "Could not resolve hostname" in win.details.text()
    # The error reached Qt's notification call once, and a click opens its folder.
    wait(lambda: any("origin: host not found" in t for _, t in recorded), 10, "notified")
    assert [t for _, t in recorded] == ["Failed to sync with origin: host not found"]
    win.hide()
    app.tray.icon.messageClicked.emit()
    assert win.isVisible() and win.tabs.currentIndex() == 0
    assert win.repos.topLevelItem(0).isSelected()


def test_clicking_a_conflict_notification_opens_its_resolver(
        make_core: Any, make_app: Any, wait: Any, run: Any, tmp_path: Path) -> None:
    folder = tmp_path / "r"
    app = _app_with_repo(make_core, make_app, wait, run, folder)
    recorded = record_messages(app)
    c = Conflict(str(folder), "hello.txt", ("hello.variant-1.txt", "hello.variant-2.txt"))
    app.tray.notify_conflict(c)
    assert recorded == [("Conflicting versions",
                         "hello.txt was changed on two devices; both versions were kept.")]
    app.tray.icon.messageClicked.emit()
    dlg = app.conflict_dialogs[(str(folder), "hello.txt")]
    assert dlg.isVisible()


def test_a_folder_that_disappears_is_an_error_until_it_is_back(
        make_core: Any, make_app: Any, wait: Any, run: Any, tmp_path: Path,
        config_root: Path) -> None:
    folder = tmp_path / "r"
    other = tmp_path / "other"
    make_repo(other)
    app = _app_with_repo(make_core, make_app, wait, run, folder)
    recorded = record_messages(app)
    run(app.core.add_remote(str(folder), "usb", str(other)))
    wait(lambda: all(rm.last_sync for r in app.bridge.status.repos for rm in r.remotes)
         and shown_health(app) is Health.SYNCED, BOUND, "synced with usb")
    folder.rename(tmp_path / "moved")  # the drive unplugged, the folder moved
    words = f"error in {folder}: folder not found (unplugged or moved?)"
    # A job running at that moment may fail first; the missing folder is what stays.
    wait(lambda: shown_health(app) is Health.ERROR
         and app.tray.icon.toolTip().split("\n")[0] == f"annexsync: {words}", BOUND,
         "the error icon and words for a missing folder")
    sees(app, Health.ERROR, f"annexsync: {words}",
         "Error: folder not found (unplugged or moved?)", run, config_root / "a")
    win = app.open_window()
    wait(lambda: win.repos.topLevelItem(0) is not None
         and win.repos.topLevelItem(0).childCount() > 0, BOUND, "the folder row and its remote")
    top = win.repos.topLevelItem(0)
    assert top.text(1) == "error: folder not found (unplugged or moved?)"
    assert top.child(0).text(1) == "last sync " + top.child(0).text(1).split("last sync ")[-1]
    assert app.bridge.status.repos[0].remotes[0].reachable is None  # not "reachable" now
    wait(lambda: any("folder not found" in t for _, t in recorded), 10, "notified")
    (tmp_path / "moved").rename(folder)
    # The folder's return starts a full round; icon and CLI agree once it is done.
    _wait_settled(app, wait, run, config_root / "a", Health.SYNCED, "synced once the folder is back")


def _cancel_an_upload(make_core: Any, make_app: Any, wait: Any, run: Any, tmp_path: Path,
                      config_root: Path) -> tuple[Any, Path, Path]:  # fmt: skip
    """A repository synced with a clone ``b``; the upload of a new big.bin to
    b, slowed to 150 kB/s, cancelled by the person in the window: ATTENTION,
    in words.  Returns the app, the folder and b."""
    folder, other = tmp_path / "r", tmp_path / "b"
    app = _app_with_repo(make_core, make_app, wait, run, folder)
    core = app.core
    git(tmp_path, "clone", "-q", str(folder), str(other))
    make_repo(other)  # annexsync init in the clone
    run(core.update_settings(core.settings.replace(bandwidth_limit=150_000)))
    run(core.add_remote(str(folder), "b", str(other)))
    wait(lambda: shown_health(app) is Health.SYNCED and all(
        rm.last_sync for rm in app.bridge.status.repos[0].remotes), BOUND, "synced with b")
    (folder / "big.bin").write_bytes(os.urandom(3_000_000))
    wait(lambda: any(t.state == "running" and t.path == "big.bin"
                     for t in app.bridge.status.repos[0].transfers), BOUND, "upload running")
    win = app.open_window()
    win.tabs.setCurrentIndex(1)
    wait(lambda: win.transfers_model.rowCount() > 0, 5)
    row = next(r for r in range(win.transfers_model.rowCount())
               if win.transfers_model.transfer(r).state == "running")
    win.transfers.selectRow(row)
    win.cancel_button.click()  # the person cancels it
    _wait_settled(app, wait, run, config_root / "a", Health.ATTENTION,
                  "attention: the content is not where it is wanted")
    tip = "annexsync: 1 file not copied (transfer cancelled or failed)"
    sees(app, Health.ATTENTION, tip, "1 file(s) not copied: transfer cancelled or failed", run,
         config_root / "a")
    return app, folder, other


def test_a_cancelled_transfer_is_not_synced(make_core: Any, make_app: Any, wait: Any, run: Any,
                                            tmp_path: Path, config_root: Path) -> None:
    app, folder, other = _cancel_an_upload(make_core, make_app, wait, run, tmp_path, config_root)
    core = app.core
    # What made it honest: b holds a pointer, not the content.
    objects = other / ".git" / "annex" / "objects"
    assert (other / "big.bin").exists() or git(folder, "ls-files", "big.bin").strip()
    assert not list(objects.rglob("*.bin"))
    # "Sync now" copies it; then, and only then, it is synced.
    run(core.update_settings(core.settings.replace(bandwidth_limit=None)))
    app.tray.rebuild_menu()
    app.tray.named["sync-now"].trigger()
    _wait_shown(app, wait, Health.SYNCED, "synced once the content arrived")
    assert list(objects.rglob("*.bin"))


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[str]:
    """A real ``git daemon`` on loopback serving one bare repository (a network remote)."""
    root = tmp_path / "served"
    root.mkdir()
    git(root, "init", "-q", "--bare", "srv.git")
    port = _free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", f"--base-path={root}", "--export-all",
         "--enable=receive-pack", "--listen=127.0.0.1", f"--port={port}", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/srv.git"
    finally:
        proc.terminate()
        proc.wait(10)


def test_offline_then_back_reconnects_and_pushes(make_core: Any, make_app: Any, wait: Any,
                                                 run: Any, tmp_path: Path, config_root: Path,
                                                 git_daemon: str) -> None:
    online = [True]
    folder = tmp_path / "r"
    app = _app_with_repo(make_core, make_app, wait, run, folder, net_probe=lambda: online[0])
    run(app.core.add_remote(str(folder), "srv", git_daemon))
    served = tmp_path / "served" / "srv.git"
    wait(lambda: shown_health(app) is Health.SYNCED and all(
        rm.last_sync for rm in app.bridge.status.repos[0].remotes), BOUND, "pushed to srv")

    online[0] = False  # the network goes
    _wait_shown(app, wait, Health.OFFLINE, "the offline icon")
    sees(app, Health.OFFLINE, "annexsync: offline, waiting for the network",
         "Offline, waiting for the network", run, config_root / "a")
    (folder / "while-offline.txt").write_text("x\n")
    wait(lambda: "while-offline.txt" in git(folder, "ls-files"), BOUND, "committed offline")
    time.sleep(1.5)  # a probe round or more: nothing reaches srv while offline
    assert "while-offline.txt" not in git(served, "ls-tree", "-r", "--name-only", "main",
                                          check=False)
    assert shown_health(app) is Health.OFFLINE

    online[0] = True  # it comes back: reconnect (fetch, push) and rescan
    wait(lambda: "while-offline.txt" in git(served, "ls-tree", "-r", "--name-only", "main",
                                            check=False), BOUND, "pushed once back")
    _wait_shown(app, wait, Health.SYNCED, "synced again")
    sees(app, Health.SYNCED, "annexsync: everything synced", "Everything synced", run,
         config_root / "a")
    assert "Network is back" in [a.text for a in app.bridge.status.alerts]


@pytest.mark.interop
def test_a_cancelled_transfer_made_moot_another_way_is_synced(
    make_core: Any, make_app: Any, wait: Any, run: Any, tmp_path: Path, config_root: Path,
) -> None:
    """The person cancels the upload, then copies the file by hand with real
    git-annex: the content is where it is wanted, so after the next scan the
    tray says synced, without "Sync now" (the cancelled transfer used to keep
    it at ATTENTION until then)."""
    app, folder, other = _cancel_an_upload(make_core, make_app, wait, run, tmp_path, config_root)
    annex(folder, "copy", "-q", "--to", "b", "big.bin")
    assert list((other / ".git" / "annex" / "objects").rglob("*.bin"))
    _wait_settled(app, wait, run, config_root / "a", Health.SYNCED,
                  "synced: the content got to b another way")
    assert not [t for t in app.bridge.status.repos[0].transfers if t.state == "cancelled"]
