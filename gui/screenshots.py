"""Render the screenshots in ``docs/screenshots/``: main window, tray menu, the wizards
(first run, pairing).

    python -m gui.screenshots [OUT_DIR]      # under X (Xvfb + trayer for the tray shot)

The views are handed a fixed, representative snapshot (a transfer running, a
device waiting, a conflict) through ``StaticCore`` so every screenshot shows
the same thing; the app, tray and windows are the real ones.  With a tray host
the tray shot is a grab of the screen around the real tray icon and its open
menu; without one it is the menu alone.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from core.activity import Activity
from core.settings import Settings
from core.status import (
    Alert,
    Conflict,
    Health,
    RemoteStatus,
    RepoStatus,
    Status,
    TransferStatus,
)

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def sample_status(now: float) -> Status:
    """A representative snapshot."""
    home = str(Path.home() / "Annex")
    transfers = (
        TransferStatus(1, home, "Photos/2026/harbour.jpg", "SHA256E-s4812331--a.jpg", "upload",
                       "phone", 2_950_000, 4_812_331, 1_450_000.0, "running"),
        TransferStatus(2, home, "Music/concert.flac", "SHA256E-s38112000--b.flac", "download",
                       "nas", 9_400_000, 38_112_000, 3_200_000.0, "running"),
        TransferStatus(3, home, "Videos/birthday.mp4", "SHA256E-s210000000--c.mp4", "upload",
                       "phone", 0, 210_000_000, 0.0, "queued"),
    )
    remotes = (
        RemoteStatus("phone", "5b1c", "p2p", True, now - 95, None, now + 24, transport="ssh"),
        RemoteStatus("nas", "9e07", "path", True, now - 600, transport="folder"),
        RemoteStatus("laptop", "c4d2", "p2p", False, now - 7300, now - 5400, transport="ssh"),
    )
    conflict = Conflict(home, "Documents/notes.txt",
                        ("Documents/notes.variant-1a2b.txt", "Documents/notes.variant-9f8e.txt"),
                        ("this device", "laptop"))
    return Status(
        repos=(RepoStatus(home, "e1f0", "desktop", 0, 1, transfers, remotes, (conflict,)),),
        alerts=(
            Alert(3, "warning", "Documents/notes.txt was changed on two devices", now - 40, True),
            Alert(2, "success", "Synced with phone, nas", now - 95),
            Alert(1, "info", "Waiting for laptop", now - 5400),
        ),
        activity=("Uploading harbour.jpg to phone", "Downloading concert.flac from nas",
                  "Synced with phone, nas", "Added 14 files", "Committed 14 changes"),
        activity_log=(
            Activity(now - 30, "Uploading harbour.jpg to phone"),
            Activity(now - 60, "Downloading concert.flac from nas"),
            Activity(now - 95, "Synced with phone, nas", 3),
            Activity(now - 400, "Committed 14 changes in Annex"),
        ),
    )


def state_statuses(now: float) -> dict[str, Status]:
    """One snapshot per health state (issue 18), plus a missing folder: name -> status."""
    home = str(Path.home() / "Annex")
    ok = (RemoteStatus("nas", "9e07", "path", True, now - 600, transport="folder"),)

    def one(remotes: tuple[RemoteStatus, ...] = ok, **kw: object) -> tuple[RepoStatus, ...]:
        return (RepoStatus(home, "e1f0", "desktop", remotes=remotes, **kw),)  # type: ignore[arg-type]

    running = TransferStatus(1, home, "Photos/harbour.jpg", "SHA256E-s4812331--a.jpg", "upload",
                             "nas", 2_950_000, 4_812_331, 1_450_000.0, "running")
    cancelled = TransferStatus(2, home, "Videos/birthday.mp4", "SHA256E-s210000000--c.mp4",
                               "upload", "nas", 52_000_000, 210_000_000, 0.0, "cancelled")
    dns = ("git fetch --quiet origin failed (128)\nssh: Could not resolve hostname "
           "server.invalid: Name or service not known\nfatal: Could not read from remote "
           "repository.\n\nPlease make sure you have the correct access rights\nand the "
           "repository exists.")
    failing = (*ok, RemoteStatus("origin", None, "p2p", None, None, error="host not found",
                                 detail=dns, pending=True, transport="ssh"))
    waiting = (RemoteStatus("laptop", "c4d2", "p2p", False, now - 7300, now - 5400,
                            error="connection refused", transport="ssh"), *ok)
    return {
        Health.SYNCED.value: Status(repos=one()),
        Health.SYNCING.value: Status(repos=one(uncommitted=3, transfers=(running,))),
        Health.WAITING.value: Status(repos=one(waiting)),
        Health.OFFLINE.value: Status(repos=one(), online=False),
        Health.PAUSED.value: Status(repos=one(), paused_until=math.inf),
        Health.ATTENTION.value: Status(repos=one(transfers=(cancelled,))),
        Health.ERROR.value: Status(repos=one(failing)),
        "error-folder-missing": Status(repos=one(
            (RemoteStatus("nas", "9e07", "path", None, now - 600, transport="folder"),),
            missing=True)),
        Health.SETUP.value: Status(),
        Health.STOPPED.value: Status(repos=one(), daemon=False),
    }


class StaticCore:
    """A core stand-in holding one snapshot, for screenshots only (tests use the real Core)."""

    def __init__(self, status: Status) -> None:
        self.status = status
        self.settings = Settings(repositories=tuple(r.path for r in status.repos))

    def subscribe(self, callback: Callable[[Status], None]) -> Callable[[], None]:
        return lambda: None

    async def _nothing(self, *args: object, **kw: object) -> None:
        return None

    pause = resume = sync_now = add_repository = remove_repository = add_remote = _nothing
    cancel_transfer = resolve_conflict = update_settings = dismiss_alert = _nothing
    set_remote_url = remove_remote = _nothing


def _save(widget: QWidget, out: Path, name: str) -> Path:
    QApplication.processEvents()
    path = out / name
    widget.grab().save(str(path))
    return path


async def _settle(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        await asyncio.sleep(0.02)


async def capture(out: Path) -> list[Path]:
    """Render the screenshots into ``out`` (the three views, then the window in each
    health state); returns their paths."""
    from gui.app import App

    out.mkdir(parents=True, exist_ok=True)
    now = time.time()
    first_run = App(StaticCore(Status()), None, opener=lambda p: None)  # type: ignore[arg-type]
    app = App(StaticCore(sample_status(now)), None, opener=lambda p: None)  # type: ignore[arg-type]
    written = []
    try:
        wizard = first_run.open_wizard()
        wizard.folder_page.path.setText(str(Path.home() / "Annex"))
        wizard.folder_page.description.setText("desktop")
        await _settle(0.2)
        written.append(_save(wizard, out, "first-run-wizard.png"))
        wizard.hide()

        window = app.open_window()
        window.resize(720, 460)
        window.tabs.setCurrentIndex(1)
        await _settle(0.2)
        written.append(_save(window, out, "main-window-transfers.png"))
        window.tabs.setCurrentIndex(0)
        await _settle(0.2)
        written.append(_save(window, out, "main-window.png"))
        window.tabs.setCurrentIndex(2)
        await _settle(0.2)
        written.append(_save(window, out, "main-window-activity.png"))
        window.hide()
        written += await _dialog_shots(app, out)

        written += await _pairing_shots(app, out)
        written.append(await _tray_shot(app, out))
    finally:
        await first_run.aclose()
        await app.aclose()
    return written + await capture_states(out, now)


async def _dialog_shots(app: object, out: Path) -> list[Path]:
    """The add-folder wizard, the conflict resolver and the About dialog (issue 19)."""
    from gui.app import App

    assert isinstance(app, App)
    written = []
    conflict = next(c for r in app.bridge.status.repos for c in r.conflicts)
    for name, dlg in (("add-folder-wizard.png", app.open_add_folder()),
                      ("conflict-dialog.png", app.resolve_conflict(conflict)),
                      ("about.png", app.open_about())):
        await _settle(0.2)
        written.append(_save(dlg, out, name))
        dlg.hide()
    return written


async def capture_states(out: Path, now: float) -> list[Path]:
    """``main-window-<state>.png`` for every health state (``state_statuses``)."""
    from gui.app import App

    written = []
    for name, status in state_statuses(now).items():
        app = App(StaticCore(status), None, opener=lambda p: None)  # type: ignore[arg-type]
        try:
            window = app.open_window()
            window.resize(640, 400)
            if status.repos and status.repos[0].remotes:  # a failure's details show on selection
                top = window.repos.topLevelItem(0)
                last = top.child(top.childCount() - 1) if top is not None else None
                if last is not None:
                    last.setSelected(True)
            await _settle(0.15)
            written.append(_save(window, out, f"main-window-{name}.png"))
            window.hide()
        finally:
            await app.aclose()
    return written


async def _pairing_shots(app: object, out: Path) -> list[Path]:
    """Both pairing wizards in a representative state (a code shown; a join done)."""
    from core.pairing.service import OpenWindow, PairOutcome
    from gui.app import App
    from gui.windows.pairing import outcome_text

    assert isinstance(app, App)
    pair = app.open_pair()
    pair.own.setChecked(True)
    pair.start.setEnabled(False)
    pair._opened(OpenWindow("7-tracker-revenue", app.bridge.now() + 522, "own"))
    await _settle(0.2)
    shots = [_save(pair, out, "pair-device-wizard.png")]
    pair._ticker.stop()
    pair.hide()
    join = app.open_join()
    join.code.setText("7-tracker-revenue")
    join.said.setText(outcome_text(PairOutcome("5b1c", "laptop", "XMPP"), join.tr))
    join.cancel.setText(join.tr("Close"))
    await _settle(0.2)
    shots.append(_save(join, out, "join-with-code-wizard.png"))
    join.hide()
    return shots


async def _tray_shot(app: object, out: Path) -> Path:
    from gui.app import App

    assert isinstance(app, App)
    tray = app.tray
    tray.show()
    deadline = time.monotonic() + 3
    while QSystemTrayIcon.isSystemTrayAvailable() and tray.icon.geometry().isEmpty():
        if time.monotonic() > deadline:
            break
        await _settle(0.05)
    geo = tray.icon.geometry()
    path = out / "tray-menu.png"
    if geo.isEmpty():  # no tray host: the menu alone
        tray.rebuild_menu()
        tray.menu.adjustSize()
        return _save(tray.menu, out, path.name)
    await _settle(0.6)  # embedding finishes after the geometry is known: read it again
    geo = tray.icon.geometry()
    tray.menu.popup(QPoint(geo.right() - tray.menu.sizeHint().width(), geo.bottom() + 2))
    await _settle(0.4)
    screen = QApplication.primaryScreen()
    area = QRect(tray.menu.geometry()).united(geo).adjusted(-8, 0, 8, 8) & screen.geometry()
    shot = screen.grabWindow(0, area.x(), area.y(), area.width(), area.height())
    tray.menu.hide()
    shot.save(str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    """Render the screenshots (into ``docs/screenshots`` unless a directory is given)."""
    import qasync  # type: ignore[import-untyped]

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else DEFAULT_OUT
    if not os.environ.get("DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    qapp = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(qapp, QApplication)
    qapp.setQuitOnLastWindowClosed(False)
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(qapp)) as runner:
        for p in runner.run(capture(out)):
            print(p)
    return 0


if __name__ == "__main__":

    sys.exit(main())
