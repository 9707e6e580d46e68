"""The tray icon and its menu.

The icon follows ``Status.health(now)`` (so it never shows *synced* while work
is pending, a push with a paired device included), with a progress ring while
transfers run; the tooltip is ``Status.tooltip`` (it names running and failed
pushes); the menu has a line per running or failed push.  The menu is rebuilt from the current status each time it is
about to show (as vorta's ``tray_menu.py``), and while it is open a one-second
timer refreshes the lines that count (last sync "ago", a push's timeout).  No
timer runs while the menu is closed, so an idle tray costs no CPU.

Where the platform has no tray (``isSystemTrayAvailable()`` false) the icon is
still created -- Qt then simply shows nothing -- and notifications fall back to
the log (a null object, ``supportsMessages``), so the app keeps running.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from core.failures import one_line
from core.status import Alert, Conflict, Health, PushStatus, RemoteStatus, Status, error_words
from gui import format as fmt
from gui.actions import Actions
from gui.bridge import Bridge
from gui.icons import progress_icon, state_icon
from gui.widgets.pushes import push_state

logger = logging.getLogger(__name__)


MENU_LINE = 60  # characters: a remote's line never widens the tray menu (issue 18)


def remote_line(rm: RemoteStatus, now: float, tr: Callable[[str], str]) -> str:
    """One line for a remote or device: its state (a short reason when it fails) or last sync.

    Always one line of at most ``MENU_LINE`` characters: the raw text of a
    failure is for the window's details view (``RemoteStatus.detail``).
    """
    return one_line(_remote_text(rm, now, tr), MENU_LINE)


def _remote_text(rm: RemoteStatus, now: float, tr: Callable[[str], str]) -> str:
    if rm.push_deadline is not None:
        left = max(0.0, rm.push_deadline - now)
        return tr("%1: pushing, times out in %2").replace("%1", rm.name).replace("%2", fmt.duration(left))
    if rm.failure:
        return tr("%1: failing: %2").replace("%1", rm.name).replace("%2", rm.failure)
    if rm.waiting:
        why = f" ({rm.error})" if rm.error else ""
        since = rm.waiting_since
        if since is not None:
            return tr("%1: waiting since %2").replace("%1", rm.name).replace(
                "%2", fmt.clock(since, now)) + why
        return tr("%1: waiting").replace("%1", rm.name) + why
    return tr("%1: last sync %2").replace("%1", rm.name).replace("%2", fmt.ago(rm.last_sync, now))


def headline(status: Status, now: float, tr: Callable[[str], str]) -> str:
    """The window's headline and (cut to ``MENU_LINE``) the menu's first line, translated."""
    text = _headline(status, now, tr)
    return one_line(text, len(text))


def _headline(status: Status, now: float, tr: Callable[[str], str]) -> str:
    h = status.health(now)
    if h is Health.PAUSED:
        until = status.paused_until
        if until is None or math.isinf(until):
            return tr("Paused")
        return tr("Paused until %1").replace("%1", fmt.clock(until, now))
    if h is Health.SYNCING:
        pct = status.progress()
        if pct is not None:
            return tr("Syncing… %1%").replace("%1", str(int(pct * 100)))
        return tr("Syncing…")
    if h is Health.WAITING:
        since = [rm.waiting_since for r in status.repos for rm in r.remotes
                 if rm.reachable is False and rm.waiting_since is not None]
        if since:
            return tr("Waiting for a device since %1").replace("%1", fmt.clock(min(since), now))
        names = sorted({p.peer_name for p in status.peers() if p.waiting})
        if names:  # a cluster node, a paired device, a push: say which
            return tr("Waiting for %1").replace("%1", ", ".join(names))
        return tr("Waiting for a device")
    if h is Health.ATTENTION:
        n_conflicts = sum(len(r.conflicts) for r in status.repos)
        if n_conflicts:
            return tr("%1 conflict(s) need you").replace("%1", str(n_conflicts))
        n = sum(len(r.unfinished()) for r in status.repos)
        return tr("%1 file(s) not copied: transfer cancelled or failed").replace("%1", str(n))
    if h is Health.ERROR:
        problem = next((r.problem for r in status.repos if r.problem), None)
        return tr("Error: %1").replace("%1", problem or error_words(status))
    return {
        Health.SYNCED: tr("Everything synced"),
        Health.SETUP: tr("No folders synced yet"),
        Health.STOPPED: tr("Not running"),
        Health.OFFLINE: tr("Offline, waiting for the network"),
    }[h]


def push_line(p: PushStatus, now: float, tr: Callable[[str], str]) -> str:
    """A push in the menu: ``desktop: sending, waiting for data, times out in 40 s``."""
    way = tr("sending") if p.direction == "outgoing" else tr("receiving")
    return f"{p.peer}: {way}, {push_state(p, now, tr)}"


def devices_line(status: Status, tr: Callable[[str], str]) -> str:
    """Which other devices are online (issue 11: the tray menu names them)."""
    names = [d.name for d in status.online_devices()]
    if names:
        return tr("Online: %1").replace("%1", ", ".join(names))
    if status.xmpp.state == "online":
        return tr("No other device online")
    return tr("Devices: not connected") if status.xmpp.account else tr("Devices: no XMPP account")


class Tray(QObject):
    """The system tray icon; the menu's actions call the app's callbacks and ``Actions``."""

    def __init__(
        self,
        bridge: Bridge,
        actions: Actions,
        *,
        open_window: Callable[..., object],
        open_settings: Callable[[], object],
        open_folder: Callable[[str], None],
        resolve_conflict: Callable[[Conflict], object],
        quit: Callable[[], object],
        pair_device: Callable[[], object] | None = None,
        join_device: Callable[[], object] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._pair_device, self._join_device = pair_device, join_device
        self.bridge, self.actions = bridge, actions
        self._open_window, self._open_settings = open_window, open_settings
        self._open_folder, self._resolve, self._quit = open_folder, resolve_conflict, quit
        self.icon = QSystemTrayIcon(self)
        self.menu = QMenu()
        self.menu.setObjectName("tray-menu")
        self.icon.setContextMenu(self.menu)
        self.named: dict[str, QAction] = {}
        self._live: list[tuple[QAction, Callable[[], str]]] = []
        self._shown: tuple[Health, int] | None = None
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self._refresh_live)
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.menu.aboutToShow.connect(self._ticker.start)
        self.menu.aboutToHide.connect(self._ticker.stop)
        self.icon.activated.connect(self._on_activated)
        self._on_click: Callable[[], object] = open_window
        self._add_folder: Callable[[], object] | None = None
        self._about: Callable[[], object] | None = None
        self.icon.messageClicked.connect(self._on_message_clicked)
        bridge.statusChanged.connect(self.update)
        bridge.alertRaised.connect(self.notify_alert)
        bridge.conflictFound.connect(self.notify_conflict)
        self.update(bridge.status)
        self.rebuild_menu()

    # --- icon -----------------------------------------------------------------------

    def show(self) -> None:
        """Put the icon in the tray."""
        self.icon.show()

    def hide(self) -> None:
        """Take the icon out of the tray."""
        self.icon.hide()

    def update(self, status: Status) -> None:
        """Redraw the icon (only when its state or progress step changed) and the tooltip."""
        now = self.bridge.now()
        health = status.health(now)
        pct = status.progress() if health is Health.SYNCING else None
        step = -1 if pct is None else int(pct * 20)  # 5 % steps: no redraw per byte
        if (health, step) != self._shown:
            self._shown = (health, step)
            self.icon.setIcon(progress_icon(pct) if pct is not None else state_icon(health))
        self.icon.setToolTip(status.tooltip(now))

    @property
    def health(self) -> Health | None:
        """The state the icon shows now."""
        return self._shown[0] if self._shown else None

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger,
                      QSystemTrayIcon.ActivationReason.DoubleClick):
            self._open_window()

    # --- notifications --------------------------------------------------------------

    def _message(self, title: str, text: str, icon: QSystemTrayIcon.MessageIcon,
                 on_click: Callable[[], object] | None = None) -> None:
        """Show a desktop notification; ``on_click`` runs when the person clicks it."""
        self._on_click = on_click or self._open_window
        if QSystemTrayIcon.supportsMessages() and self.icon.isVisible():
            self.icon.showMessage(title, text, icon, 10_000)
        else:
            logger.info("notification: %s: %s", title, text)

    def _on_message_clicked(self) -> None:
        """The last notification was clicked: open the place it is about."""
        self._on_click()

    def notify_alert(self, alert: Alert) -> None:
        """A desktop notification for an alert that asks for one (errors always do);
        a click opens the window at the folder it is about."""
        kind = {
            "error": QSystemTrayIcon.MessageIcon.Critical,
            "warning": QSystemTrayIcon.MessageIcon.Warning,
        }.get(alert.level, QSystemTrayIcon.MessageIcon.Information)
        repo = alert.repo
        self._message(self.tr("annexsync"), alert.text, kind,
                      (lambda: self._open_window(repo)) if repo else None)

    def notify_conflict(self, conflict: Conflict) -> None:
        """Tell the user once that two versions of a file exist; a click opens the resolver."""
        self._message(
            self.tr("Conflicting versions"),
            self.tr("%1 was changed on two devices; both versions were kept.").replace(
                "%1", conflict.path),
            QSystemTrayIcon.MessageIcon.Warning,
            functools.partial(self._resolve, conflict),
        )

    # --- menu -----------------------------------------------------------------------

    def _add(self, name: str, text: str, slot: Callable[[], object] | None = None,
             menu: QMenu | None = None) -> QAction:
        action = (menu or self.menu).addAction(text)
        action.setObjectName(f"action-{name}")
        if slot is None:
            action.setEnabled(False)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        self.named[name] = action
        return action

    def _live_line(self, name: str, render: Callable[[], str]) -> None:
        self._live.append((self._add(name, render()), render))

    def _refresh_live(self) -> None:
        for action, render in self._live:
            action.setText(render())

    def rebuild_menu(self) -> None:
        """Build the menu from the newest status (called when it is about to show)."""
        self.menu.clear()
        self.named.clear()
        self._live.clear()
        status, tr = self.bridge.status, self.tr
        self._live_line("status", lambda: one_line(
            headline(self.bridge.status, self.bridge.now(), tr), MENU_LINE))
        for i, repo in enumerate(status.repos):
            nodes = {n for rm in repo.remotes for n in rm.nodes}  # shown as their cluster
            for j, rm in enumerate(repo.remotes):
                if rm.name in nodes:
                    continue
                def render(repo_path: str = repo.path, name: str = rm.name) -> str:
                    cur = self._remote(repo_path, name)
                    return "   " + (remote_line(cur, self.bridge.now(), tr) if cur else name)
                self._live_line(f"remote-{i}-{j}", render)
            for c in repo.conflicts:
                self._add(f"conflict-{c.path}", tr("Resolve conflict: %1…").replace("%1", c.path),
                          functools.partial(self._resolve, c))
        self._live_line("devices", lambda: devices_line(self.bridge.status, tr))
        for p in status.pushes:
            if p.active or p.failed:
                self._live_line(f"push-{p.repo}-{p.job_id}", functools.partial(self._push_line, p))
        self.menu.addSeparator()
        self._add_open_folder(status)
        self._add("open-window", tr("Open window"), self._open_window)
        self._add("pair-device", tr("Pair a device…"), self._pair_device)
        self._add("join-device", tr("Join with a code…"), self._join_device)
        self.menu.addSeparator()
        now = self.bridge.now()
        if status.paused(now):
            self._add("resume", tr("Resume syncing"), self.actions.resume)
        else:
            self._add("pause", tr("Pause syncing"), self.actions.pause)
            self._add("pause-hour", tr("Pause for 1 hour"),
                      lambda: self.actions.pause(self.bridge.now() + 3600))
            self._add("pause-tomorrow", tr("Pause until tomorrow"),
                      lambda: self.actions.pause(fmt.tomorrow_morning(self.bridge.now())))
        sync = self._add("sync-now", tr("Sync now"), self.actions.sync_now)
        sync.setEnabled(bool(status.repos) and not status.paused(now))
        self.menu.addSeparator()
        self._add_everyday_items()
        self._add("settings", tr("Settings…"), self._open_settings)
        self._add("quit", tr("Quit annexsync"), self._quit)

    def add_everyday_entries(self, *, add_folder: Callable[[], object],
                             about: Callable[[], object]) -> None:
        """Give the menu its *Add folder…* and *About annexsync* entries (issue 19)."""
        self._add_folder, self._about = add_folder, about
        self.rebuild_menu()

    def _add_everyday_items(self) -> None:
        if self._add_folder is not None:
            self._add("add-folder", self.tr("Add folder…"), self._add_folder)
        if self._about is not None:
            self._add("about", self.tr("About annexsync"), self._about)

    def _add_open_folder(self, status: Status) -> None:
        repos = status.repos
        if len(repos) <= 1:
            act = self._add("open-folder", self.tr("Open folder"),
                            lambda: self._open_folder(repos[0].path) if repos else None)
            act.setEnabled(bool(repos))
            return
        sub = self.menu.addMenu(self.tr("Open folder"))
        for i, r in enumerate(repos):
            self._add(f"open-folder-{i}", os.path.basename(r.path) or r.path,
                      functools.partial(self._open_folder, r.path), menu=sub)

    def _push_line(self, shown: PushStatus) -> str:
        """A push's menu line from the newest status (its countdown, then its outcome)."""
        cur = next((p for p in self.bridge.status.pushes
                    if (p.repo, p.job_id) == (shown.repo, shown.job_id)), shown)  # fmt: skip
        return "   " + push_line(cur, self.bridge.now(), self.tr)

    def _remote(self, repo_path: str, name: str) -> RemoteStatus | None:
        for r in self.bridge.status.repos:
            if r.path == repo_path:
                return next((rm for rm in r.remotes if rm.name == name), None)
        return None

    def dispose(self) -> None:
        """Hide the icon and stop the menu's timer."""
        self._ticker.stop()
        self.icon.hide()


