"""The tray app's composition root and its event loop.

``main`` makes the ``QApplication`` (kept alive with no window:
``setQuitOnLastWindowClosed(False)``), a ``core.api.Core`` for the config
directory, and runs ``run_app`` on a qasync ``QEventLoop`` through
``asyncio.Runner(loop_factory=...)`` (``asyncio.run`` takes a loop factory only
from Python 3.12).  ``run_app`` owns the core's task in a ``TaskGroup``, builds
``App`` and waits for *Quit*; then it closes the views and stops the core.

``App`` builds and wires every part (bridge, actions, tray, windows) and is
the only object that knows them all; the parts only know the bridge, the
actions and the callbacks they were given.  Windows are built on first use.

Signals: SIGTERM quits cleanly; SIGINT (Ctrl-C) cancels the run as
``asyncio.Runner`` does.  Qt's loop does not run Python code while idle, so a
socket pair registered with ``signal.set_wakeup_fd`` and watched by a
``QSocketNotifier`` wakes the interpreter -- no polling timer, no idle CPU.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSocketNotifier, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon, QWidget

from core.api import Core
from core.instance import hand_over_reply
from core.settings import Settings, load_settings, resolve_config_dir
from core.status import Conflict
from gui import i18n
from gui.actions import Actions
from gui.bridge import Bridge
from gui.icons import app_icon
from gui.tray import Tray
from gui.windows.about import AboutDialog
from gui.windows.conflict import ConflictDialog
from gui.windows.log import LogDialog
from gui.windows.main_window import MainWindow
from gui.windows.pairing import JoinDialog, PairDialog
from gui.windows.settings import SettingsDialog
from gui.windows.wizard import FirstRunWizard

logger = logging.getLogger(__name__)
# the menu entry's name (without .desktop): the <id> of resources/annexsync.metainfo.xml
DESKTOP_ID = "io.github.annexsync.annexsync"

TRACE_ENV = "ANNEXSYNC_STARTUP_TRACE"  # bench/gui_startup.py: report when the tray icon is up


def open_path(path: str) -> bool:
    """Open a folder or file with the desktop's default application; False when none did."""
    return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(path)))


class App(QObject):
    """Builds and wires the tray app's parts for one core."""

    def __init__(
        self,
        core: Core,
        config_dir: Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        opener: Callable[[str], object] = open_path,
    ) -> None:
        super().__init__()
        self.core, self.config_dir, self.opener = core, config_dir, opener
        self.bridge = Bridge(core, clock=clock, parent=self)
        self.actions = Actions(core, self)
        self.tray = Tray(
            self.bridge, self.actions,
            open_window=self.open_window, open_settings=self.open_settings,
            open_folder=self.open_folder, resolve_conflict=self.resolve_conflict,
            quit=self.quit, pair_device=self.open_pair, join_device=self.open_join, parent=self,
        )
        self.tray.add_everyday_entries(add_folder=self.open_add_folder, about=self.open_about)
        self.window: MainWindow | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.wizard: FirstRunWizard | None = None
        self.pair_dialog: PairDialog | None = None
        self.join_dialog: JoinDialog | None = None
        self.add_folder_wizard: FirstRunWizard | None = None
        self.about: AboutDialog | None = None
        self.log_dialog: LogDialog | None = None
        self.conflict_dialogs: dict[tuple[str, str], ConflictDialog] = {}
        self._quit = asyncio.Event()
        self.actions.failed.connect(self._on_failed)
        if hasattr(core, "on_handover"):  # a second `annexsync` launch shows the window
            core.on_handover = self._on_handover

    # --- lifecycle ------------------------------------------------------------------

    def settings(self) -> Settings:
        """The current settings (the core's view when it offers one, else the file)."""
        s = getattr(self.core, "settings", None)
        if isinstance(s, Settings):
            return s
        return load_settings(self.config_dir) if self.config_dir else Settings()

    def first_run(self) -> bool:
        """No repository configured yet."""
        return not self.bridge.status.repos and not self.settings().repositories

    def start(self) -> None:
        """Show the tray icon, the current state, and the wizard on first run."""
        self.tray.show()
        self.bridge.start()
        if self.first_run():
            self.open_wizard()
        if not QSystemTrayIcon.isSystemTrayAvailable():
            self._no_tray()

    def _no_tray(self) -> None:
        """No tray host: an icon nobody sees would leave the person with nothing, so the
        window opens and says why (issue 21)."""
        window = self.open_window()
        window.statusBar().showMessage(self.tr(
            "No system tray on this desktop, so annexsync shows this window instead. "
            "Closing it leaves annexsync syncing; start annexsync again to reopen it."))

    def quit(self) -> None:
        """Ask ``run_app`` to stop (the Quit menu item, SIGTERM)."""
        self._quit.set()

    async def wait_quit(self) -> None:
        """Return once ``quit`` was called."""
        await self._quit.wait()

    async def aclose(self) -> None:
        """Finish or cancel running commands, close every window, remove the icon."""
        await self.actions.aclose()
        self.bridge.close()
        for w in self._windows():
            w.hide()  # Python owns the windows; they go with the App
        self.tray.dispose()

    def _windows(self) -> list[QWidget]:
        ws: list[QWidget | None] = [self.window, self.settings_dialog, self.wizard,
                                    self.add_folder_wizard, self.about, self.log_dialog,
                                    self.pair_dialog, self.join_dialog]
        ws += list(self.conflict_dialogs.values())
        return [w for w in ws if w is not None]

    # --- opening things ---------------------------------------------------------------

    @staticmethod
    def _raise(w: QWidget) -> None:
        """Show ``w`` in front, restored if it was minimized (issue 19)."""
        if w.isMinimized():
            w.setWindowState(w.windowState() & ~Qt.WindowState.WindowMinimized)
        w.show()
        w.raise_()
        w.activateWindow()

    def open_window(self, repo: str | None = None) -> MainWindow:
        """Show (building on first use) the main window; at ``repo``'s folder when given
        (a clicked notification about it)."""
        if self.window is None:
            self.window = MainWindow(
                self.bridge, self.actions, resolve_conflict=self.resolve_conflict,
                open_settings=self.open_settings, open_folder=self.open_folder,
                pair=self.open_pair, join=self.open_join)
            self.window.add_everyday_buttons(add_folder=self.open_add_folder,
                                             about=self.open_about, open_log=self.open_log)
        if repo is not None:
            self.window.show_repo(repo)
        self._raise(self.window)
        return self.window

    def open_pair(self) -> PairDialog:
        """Show "Pair a device…" (a fresh one unless one is open)."""
        if self.pair_dialog is None or not self.pair_dialog.isVisible():
            self.pair_dialog = PairDialog(self.bridge, self.actions)
        self._raise(self.pair_dialog)
        return self.pair_dialog

    def open_join(self) -> JoinDialog:
        """Show "Join with a code…" (a fresh one unless one is open)."""
        if self.join_dialog is None or not self.join_dialog.isVisible():
            self.join_dialog = JoinDialog(self.bridge, self.actions)
        self._raise(self.join_dialog)
        return self.join_dialog

    def open_settings(self) -> SettingsDialog:
        """Show the settings dialog."""
        if self.settings_dialog is None:
            self.settings_dialog = SettingsDialog(
                self.bridge, self.actions, settings=self.settings, config_dir=self.config_dir,
                add_folder=self.open_add_folder)
        else:
            self.settings_dialog.load()
        self._raise(self.settings_dialog)
        return self.settings_dialog

    def open_wizard(self) -> FirstRunWizard:
        """Show the wizard that adds a folder (first run, or *Add folder* in settings)."""
        if self.wizard is None or not self.wizard.isVisible():
            if self.wizard is not None:
                self.wizard.deleteLater()
            self.wizard = FirstRunWizard(self.actions)
        self._raise(self.wizard)
        return self.wizard

    def open_add_folder(self) -> FirstRunWizard:
        """Show the wizard that adds another folder (*Add folder…* in the menu, window,
        settings): it says "Add a folder", not "Welcome", and starts empty."""
        if self.first_run():
            return self.open_wizard()
        if self.add_folder_wizard is None or not self.add_folder_wizard.isVisible():
            if self.add_folder_wizard is not None:
                self.add_folder_wizard.deleteLater()
            self.add_folder_wizard = FirstRunWizard(self.actions, first_run=False)
        self._raise(self.add_folder_wizard)
        return self.add_folder_wizard

    def open_about(self) -> AboutDialog:
        """Show the About dialog (version, licence, links)."""
        if self.about is None:
            self.about = AboutDialog()
        self._raise(self.about)
        return self.about

    def open_log(self) -> LogDialog:
        """Show the log view (with *Copy diagnostics*)."""
        if self.log_dialog is None:
            self.log_dialog = LogDialog(lambda: self.bridge.status, self.config_dir)
        else:
            self.log_dialog.load()
        self._raise(self.log_dialog)
        return self.log_dialog

    def open_folder(self, path: str) -> None:
        """Open a repository folder in the file manager."""
        self.opener(path)

    def resolve_conflict(self, conflict: Conflict) -> ConflictDialog:
        """Show the resolver for one conflict (one dialog per file)."""
        key = (conflict.repo, conflict.path)
        dlg = self.conflict_dialogs.get(key)
        if dlg is None or not dlg.isVisible():
            dlg = ConflictDialog(conflict, self.actions, self.opener)
            dlg.finished.connect(lambda _r, k=key: self.conflict_dialogs.pop(k, None))
            self.conflict_dialogs[key] = dlg
        self._raise(dlg)
        return dlg

    def _on_handover(self, _argv: list[str]) -> None:
        self.open_window()

    def _on_failed(self, text: str) -> None:
        if self.wizard is not None and self.wizard.isVisible():
            return  # the wizard shows its own error
        self.tray._message(self.tr("annexsync"), text, self.tray.icon.MessageIcon.Warning)


async def run_app(core: Core, config_dir: Path | None = None, *,
                  on_started: Callable[[App], None] | None = None) -> int:
    """Run the core and the tray app until Quit; returns the exit status."""
    app = App(core, config_dir)
    async with asyncio.TaskGroup() as tg:
        core_task = tg.create_task(core.run(), name="core")
        core_task.add_done_callback(lambda _t: app.quit())
        app.start()
        if on_started is not None:
            on_started(app)
        try:
            await app.wait_quit()
        finally:
            await app.aclose()
            if not core_task.done():
                await core.stop()
    return 0


class _SignalWaker:
    """Wakes the interpreter for Unix signals while Qt's loop idles (see module header)."""

    def __init__(self, on_term: Callable[[], None]) -> None:
        self.rsock, self.wsock = socket.socketpair()
        self.rsock.setblocking(False)
        self.wsock.setblocking(False)
        self.old_fd = signal.set_wakeup_fd(self.wsock.fileno())
        self.notifier = QSocketNotifier(self.rsock.fileno(), QSocketNotifier.Type.Read)
        self.notifier.activated.connect(self._drain)
        self.old_term = signal.signal(signal.SIGTERM, lambda *_: on_term())

    def _drain(self) -> None:
        try:
            self.rsock.recv(64)
        except OSError:
            pass

    def close(self) -> None:
        signal.set_wakeup_fd(self.old_fd)
        signal.signal(signal.SIGTERM, self.old_term)
        self.notifier.setEnabled(False)
        self.rsock.close()
        self.wsock.close()


def _trace_startup(app: App, t0: float) -> None:
    """For the startup bench: print once the tray icon has a place on screen."""
    timer = QTimer(app)

    def check() -> None:
        if not app.tray.icon.geometry().isEmpty():
            timer.stop()
            print(f"tray-visible {time.time():.6f} {time.time() - t0:.3f}", file=sys.stderr, flush=True)

    timer.timeout.connect(check)
    timer.start(10)


DAEMON_RUNS = ("annexsync already runs here as a background service (`annexsync daemon`), "
               "which has no window. Its folders keep syncing. To use the tray app instead, "
               "stop the service and start annexsync again.")


def tell_daemon_runs(config_dir: Path) -> None:
    """A GUI launch found a headless daemon on the same config: say so (issue 19), on
    stderr and in a window, since a launch from the desktop menu has no terminal."""
    print(f"annexsync: {DAEMON_RUNS} (config: {config_dir})", file=sys.stderr, flush=True)
    box = QMessageBox(QMessageBox.Icon.Information, "annexsync", DAEMON_RUNS)
    box.setObjectName("daemon-runs")
    box.exec()


def main(config_dir: Path | str | None = None, argv: list[str] | None = None, *,
         on_started: Callable[[App], None] | None = None) -> int:
    """Start the tray app; returns the exit status.  ``on_started`` (tests, benches) is
    called with the ``App`` once it shows."""
    import qasync  # type: ignore[import-untyped]

    t0 = time.time()
    cfg = resolve_config_dir(config_dir)
    reply = hand_over_reply(cfg, list(argv[1:] if argv else []))
    qapp = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    assert isinstance(qapp, QApplication)
    if reply is not None:  # the running instance opens its window instead, if it has one
        if not reply.get("window", True):
            tell_daemon_runs(cfg)
        return 0
    qapp.setApplicationName("annexsync")
    qapp.setDesktopFileName(DESKTOP_ID)
    i18n.install(qapp)
    qapp.setQuitOnLastWindowClosed(False)
    qapp.setWindowIcon(app_icon())
    core = Core(cfg)
    started: list[App] = []

    def _started(app: App) -> None:
        started.append(app)
        if os.environ.get(TRACE_ENV):
            _trace_startup(app, t0)
        if on_started is not None:
            on_started(app)

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(qapp)) as runner:
        waker = _SignalWaker(lambda: started[0].quit() if started else None)
        try:
            return runner.run(run_app(core, cfg, on_started=_started))
        except KeyboardInterrupt:
            return 130
        finally:
            waker.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
