"""The main window: folders and their remotes, transfers, conflicts, activity and alerts,
devices and pushes with them, clusters and where a file's copies are.

Three tabs keep it usable at small sizes (it opens at 640×440 and still works
at 360×300).  Colours come from the palette and state icons, never fixed light
colours, so a dark theme stays readable.  The window only reads status values
from the bridge and calls ``Actions``; closing it hides it (the tray keeps
running).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSplitter,
    QStyle,
    QTableView,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.status import Conflict, Health, RepoStatus, Status
from gui import format as fmt
from gui.actions import Actions
from gui.bridge import Bridge
from gui.icons import app_icon, state_icon
from gui.models.transfers import PROGRESS, PROGRESS_ROLE, BatchProgress, Overall, TransfersModel
from gui.tray import headline, remote_line
from gui.widgets.clusters import ClustersView
from gui.widgets.devices import DevicesView
from gui.widgets.progress import ProgressDelegate
from gui.widgets.pushes import PushesView

logger = logging.getLogger(__name__)

CONFLICT_ROLE = Qt.ItemDataRole.UserRole + 10
ALERT_ROLE = Qt.ItemDataRole.UserRole + 11
DETAIL_ROLE = Qt.ItemDataRole.UserRole + 12


class MainWindow(QMainWindow):
    """The dashboard."""

    def __init__(
        self,
        bridge: Bridge,
        actions: Actions,
        *,
        resolve_conflict: Callable[[Conflict], object],
        open_settings: Callable[[], object],
        open_folder: Callable[[str], None],
        pair: Callable[[], object] | None = None,
        join: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        self.bridge, self.commands = bridge, actions
        self._resolve, self._open_settings, self._open_folder = (
            resolve_conflict, open_settings, open_folder)
        self.setObjectName("main-window")
        self.setWindowTitle(self.tr("annexsync"))
        self.setWindowIcon(app_icon())
        self.resize(640, 440)
        self.setMinimumSize(QSize(320, 260))

        self.headline = QLabel()
        self.headline.setObjectName("headline")
        self.headline.setWordWrap(True)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_folders(), self.tr("Folders"))
        self.tabs.addTab(self._build_transfers(), self.tr("Transfers"))
        self.tabs.addTab(self._build_activity(), self.tr("Activity"))
        self.devices = DevicesView(self.tr, pair=pair, join=join,
                                   forget=lambda device_id: actions.forget_device(device_id))
        self.tabs.addTab(self.devices, self.tr("Devices"))
        self.pushes = PushesView(self.tr, bridge.now)
        self.tabs.addTab(self.pushes, self.tr("Pushes"))
        self.clusters = ClustersView(self.tr, lambda repo, path: actions.file_copies(repo, path))
        self.tabs.addTab(self.clusters, self.tr("Clusters"))

        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.headline)
        lay.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        bridge.statusChanged.connect(self.show_status)
        self.show_status(bridge.status)

    # --- building -------------------------------------------------------------------

    def _build_folders(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        self.conflicts = QListWidget()
        self.conflicts.setObjectName("conflicts")
        self.conflicts.setMaximumHeight(90)
        self.conflicts.itemActivated.connect(self._on_conflict_activated)
        self.conflicts_label = QLabel(self.tr("Files changed on two devices (double-click to resolve):"))
        self.conflicts_label.setWordWrap(True)
        lay.addWidget(self.conflicts_label)
        lay.addWidget(self.conflicts)

        self.repos = QTreeWidget()
        self.repos.setObjectName("repositories")
        self.repos.setColumnCount(3)
        self.repos.setHeaderLabels([self.tr("Folder / device"), self.tr("State"), self.tr("Reached by")])
        header = self.repos.header()
        header.setStretchLastSection(False)
        for col, mode in enumerate((QHeaderView.ResizeMode.ResizeToContents,
                                    QHeaderView.ResizeMode.Stretch,
                                    QHeaderView.ResizeMode.ResizeToContents)):
            header.setSectionResizeMode(col, mode)
        self.repos.itemSelectionChanged.connect(self._show_details)
        lay.addWidget(self.repos, 1)
        # The raw text behind a failure's short reason (issue 18), for the selected row.
        self.details = QLabel()
        self.details.setObjectName("details")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setVisible(False)
        lay.addWidget(self.details)

        row = QHBoxLayout()
        self.sync_button = QPushButton(self.tr("Sync now"))
        self.sync_button.clicked.connect(lambda: self.commands.sync_now(self._selected_repo()))
        self.open_button = QPushButton(self.tr("Open folder"))
        self.open_button.clicked.connect(self._on_open_folder)
        settings = QPushButton(self.tr("Settings…"))
        settings.clicked.connect(self._open_settings)
        for b in (self.sync_button, self.open_button, settings):
            row.addWidget(b)
        row.addStretch(1)
        self._folder_buttons = row
        lay.addLayout(row)
        return w

    def add_everyday_buttons(self, *, add_folder: Callable[[], object],
                             about: Callable[[], object], open_log: Callable[[], object]) -> None:
        """*Add folder…* and *About* below the folder tree (issue 19)."""
        self.add_folder_button = QPushButton(self.tr("Add folder…"))
        self.add_folder_button.setObjectName("add-folder")
        self.add_folder_button.clicked.connect(lambda: add_folder())
        self.about_button = QPushButton(self.tr("About"))
        self.about_button.setObjectName("about")
        self.about_button.clicked.connect(lambda: about())
        self._folder_buttons.insertWidget(0, self.add_folder_button)
        self._folder_buttons.addWidget(self.about_button)
        self.log_button = QPushButton(self.tr("Log and diagnostics…"))
        self.log_button.setObjectName("open-log")
        self.log_button.clicked.connect(lambda: open_log())
        self._activity_buttons.insertWidget(0, self.log_button)

    def _build_transfers(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        self.transfers_model = TransfersModel(self)
        self.transfers = QTableView()
        self.transfers.setObjectName("transfers")
        self.transfers.setModel(self.transfers_model)
        self.transfers.setItemDelegateForColumn(PROGRESS, ProgressDelegate(PROGRESS_ROLE, self.transfers))
        self.transfers.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.transfers.verticalHeader().hide()
        self.transfers.horizontalHeader().setStretchLastSection(True)
        header = self.transfers.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(PROGRESS, QHeaderView.ResizeMode.Interactive)
        self.transfers.setColumnWidth(PROGRESS, 170)
        self.batch = BatchProgress()
        self.overall = QLabel()
        self.overall.setObjectName("overall")
        lay.addWidget(self.overall)
        self.no_transfers = QLabel(self.tr("No file transfers running."))
        self.no_transfers.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.cancel_button = QPushButton(self.tr("Cancel transfer"))
        self.cancel_button.setObjectName("cancel-transfer")
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.transfers.selectionModel().selectionChanged.connect(self._update_cancel)
        lay.addWidget(self.no_transfers)
        lay.addWidget(self.transfers, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        return w

    def _build_activity(self) -> QWidget:
        split = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(QLabel(self.tr("Alerts")))
        self.alerts = QListWidget()
        self.alerts.setObjectName("alerts")
        self.alerts.setWordWrap(True)
        tl.addWidget(self.alerts, 1)
        dismiss = QPushButton(self.tr("Dismiss"))
        dismiss.clicked.connect(self._dismiss_selected)
        row = QHBoxLayout()
        self._activity_buttons = row
        row.addStretch(1)
        row.addWidget(dismiss)
        tl.addLayout(row)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(QLabel(self.tr("Recent activity")))
        self.activity = QListWidget()
        self.activity.setObjectName("activity")
        bl.addWidget(self.activity, 1)
        split.addWidget(top)
        split.addWidget(bottom)
        return split

    # --- showing --------------------------------------------------------------------

    def show_status(self, status: Status) -> None:
        """Render a snapshot (cheap: called at most a few times a second)."""
        now = self.bridge.now()
        health = status.health(now)
        overall = self.batch.update(status)
        self.headline.setText(self._overall_headline(overall) if health is Health.SYNCING
                              and overall else headline(status, now, self.tr))
        self._show_overall(overall)
        self.setWindowIcon(state_icon(health) if health is not Health.SYNCED else app_icon())
        self._show_repos(status, now)
        self._show_conflicts(status)
        self.transfers_model.set_status(status)
        has = self.transfers_model.rowCount() > 0
        self.no_transfers.setVisible(not has)
        self._update_cancel()
        self._show_alerts(status)
        self._fill_list(self.activity, self._activity_lines(status, now))
        self.devices.show_status(status, now)
        self.pushes.show_status(status)
        self.clusters.show_status(status)
        self.sync_button.setEnabled(bool(status.repos) and not status.paused(now))
        self.open_button.setEnabled(bool(status.repos))

    def _overall_headline(self, o: Overall) -> str:
        text = self.tr("Syncing… %1%").replace("%1", str(int(o.fraction * 100)))
        if o.eta is not None and o.eta >= 1:  # "about 0 s left" says nothing
            text += self.tr(", about %1 left").replace("%1", fmt.duration(o.eta))
        return text

    def _show_overall(self, o: Overall | None) -> None:
        """All files of this batch together: the figure does not restart per file."""
        if o is None or not o.total:
            self.overall.setVisible(False)
            return
        text = self.tr("Overall: %1 of %2 (%3%)").replace("%1", fmt.size(o.done)).replace(
            "%2", fmt.size(o.total)).replace("%3", str(int(o.fraction * 100)))
        if o.eta is not None and o.eta >= 1:  # "about 0 s left" says nothing
            text += self.tr(", about %1 left").replace("%1", fmt.duration(o.eta))
        self.overall.setText(text)
        self.overall.setVisible(True)

    def _show_repos(self, status: Status, now: float) -> None:
        selected = self._selected_repo()
        items = self.repos.selectedItems()
        selected_remote = (selected, items[0].text(0)) if items and items[0].parent() else None
        self.repos.clear()
        for repo in status.repos:
            item = QTreeWidgetItem([self._repo_title(repo), self._repo_state(repo)])
            item.setData(0, Qt.ItemDataRole.UserRole, repo.path)
            item.setToolTip(0, repo.path)
            item.setIcon(0, self.style().standardIcon(QStyle.StandardPixmap.SP_DirIcon))
            # a proxied remote sits under its gateway, a cluster's nodes under the cluster
            parents = {n: rm.name for rm in repo.remotes for n in rm.nodes}
            placed: dict[str, QTreeWidgetItem] = {}
            for rm in sorted(repo.remotes, key=lambda r: (r.via is not None, not r.nodes)):
                text = remote_line(rm, now, self.tr)
                child = QTreeWidgetItem([rm.name, text.split(": ", 1)[-1], rm.transport])
                child.setData(0, Qt.ItemDataRole.UserRole, repo.path)
                child.setData(1, DETAIL_ROLE, rm.detail)
                child.setToolTip(1, rm.detail or f"{rm.kind} {rm.uuid or ''}")
                state = Health.ERROR if rm.failure else (
                    Health.WAITING if rm.waiting else Health.SYNCED if rm.reachable else None)
                if state is not None:  # not tried (or its folder missing): no check mark
                    child.setIcon(0, state_icon(state))
                parent = placed.get(parents.get(rm.name, rm.via or ""), item)
                parent.addChild(child)
                placed[rm.name] = child
                if (repo.path, rm.name) == selected_remote:
                    child.setSelected(True)
            self.repos.addTopLevelItem(item)
            item.setExpanded(True)
            if repo.path == selected and selected_remote is None:
                item.setSelected(True)
        if not status.repos:
            self.repos.addTopLevelItem(QTreeWidgetItem([self.tr("No folders yet"), ""]))

    def _repo_title(self, repo: RepoStatus) -> str:
        name = os.path.basename(repo.path.rstrip("/")) or repo.path
        return f"{name} ({repo.description})" if repo.description else name

    def _repo_state(self, repo: RepoStatus) -> str:
        if repo.problem:
            return self.tr("error: %1").replace("%1", repo.problem)
        if repo.scanning:
            return self.tr("scanning for files to transfer")
        parts = []
        if repo.uncommitted:
            parts.append(self.tr("%1 change(s) to commit").replace("%1", str(repo.uncommitted)))
        if repo.queued:
            parts.append(self.tr("%1 transfer(s) queued").replace("%1", str(repo.queued)))
        running = sum(t.state == "running" for t in repo.transfers)
        if running:
            parts.append(self.tr("%1 transfer(s) running").replace("%1", str(running)))
        if repo.conflicts:
            parts.append(self.tr("%1 conflict(s)").replace("%1", str(len(repo.conflicts))))
        unfinished = len(repo.unfinished())
        if unfinished:
            parts.append(self.tr("%1 file(s) not copied").replace("%1", str(unfinished)))
        failing = sum(1 for rm in repo.remotes if rm.failure)
        if failing:
            parts.append(self.tr("%1 remote(s) failing").replace("%1", str(failing)))
        waiting = sum(1 for rm in repo.remotes if rm.waiting)
        if waiting:
            parts.append(self.tr("waiting for %1 remote(s)").replace("%1", str(waiting)))
        return ", ".join(parts) if parts else self._quiet_state()

    def _quiet_state(self) -> str:
        """A folder with nothing pending: paused, or up to date (issue 19: its real state)."""
        if self.bridge.status.paused(self.bridge.now()):
            return self.tr("paused")
        return self.tr("up to date")

    def _show_conflicts(self, status: Status) -> None:
        items = [c for r in status.repos for c in r.conflicts]
        self.conflicts.clear()
        for c in items:
            it = QListWidgetItem(state_icon(Health.ATTENTION), self.tr("%1 — %2 versions").replace(
                "%1", c.path).replace("%2", str(len(c.variants))))
            it.setData(CONFLICT_ROLE, c)
            self.conflicts.addItem(it)
        self.conflicts.setVisible(bool(items))
        self.conflicts_label.setVisible(bool(items))

    _alerts_shown: tuple[tuple[int, str], ...] | None = None

    def _show_alerts(self, status: Status) -> None:
        icons = {
            "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
            "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
            "success": QStyle.StandardPixmap.SP_DialogApplyButton,
            "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
        }
        key = tuple((a.id, a.text) for a in status.alerts)
        if key == self._alerts_shown:
            return
        self._alerts_shown = key
        self.alerts.clear()
        for a in status.alerts:
            it = QListWidgetItem(self.style().standardIcon(icons.get(a.level, icons["info"])),
                                 f"{fmt.clock(a.time, self.bridge.now())}  {a.text}")
            it.setData(ALERT_ROLE, a.id)
            self.alerts.addItem(it)
        if not status.alerts:
            it = QListWidgetItem(self.tr("No alerts."))
            it.setFlags(Qt.ItemFlag.NoItemFlags)
            self.alerts.addItem(it)

    def _activity_lines(self, status: Status, now: float) -> list[str]:
        """Each line with its time; a repeated line once, with how many times (issue 19)."""
        if not status.activity_log:
            return list(status.activity)
        lines = []
        for a in status.activity_log:
            times = self.tr(" (×%1)").replace("%1", str(a.count)) if a.count > 1 else ""
            lines.append(f"{fmt.clock(a.time, now)}  {a.text}{times}")
        return lines

    @staticmethod
    def _fill_list(widget: QListWidget, texts: list[str]) -> None:
        if [widget.item(i).text() for i in range(widget.count())] != texts:
            widget.clear()
            widget.addItems(texts)

    def _show_details(self) -> None:
        items = self.repos.selectedItems()
        detail = items[0].data(1, DETAIL_ROLE) if items else None
        self.details.setText(self.tr("Details: %1").replace("%1", detail) if detail else "")
        self.details.setVisible(bool(detail))

    def show_repo(self, path: str) -> None:
        """Bring the Folders tab forward with ``path``'s folder selected."""
        self.tabs.setCurrentIndex(0)
        for i in range(self.repos.topLevelItemCount()):
            item = self.repos.topLevelItem(i)
            if item is not None:
                item.setSelected(item.data(0, Qt.ItemDataRole.UserRole) == path)

    # --- user actions ---------------------------------------------------------------

    def _selected_repo(self) -> str | None:
        items = self.repos.selectedItems()
        return items[0].data(0, Qt.ItemDataRole.UserRole) if items else None

    def _on_open_folder(self) -> None:
        path = self._selected_repo() or next((r.path for r in self.bridge.status.repos), None)
        if path:
            self._open_folder(path)

    def _on_conflict_activated(self, item: QListWidgetItem) -> None:
        c = item.data(CONFLICT_ROLE)
        if isinstance(c, Conflict):
            self._resolve(c)

    def _update_cancel(self) -> None:
        rows = {i.row() for i in self.transfers.selectionModel().selectedRows()}
        ok = any(self.transfers_model.transfer(r).state in ("queued", "running") for r in rows
                 if r < self.transfers_model.rowCount())
        self.cancel_button.setEnabled(ok)

    def cancel_selected(self) -> None:
        """Cancel the selected queued or running transfers."""
        for i in self.transfers.selectionModel().selectedRows():
            t = self.transfers_model.transfer(i.row())
            if t.state in ("queued", "running"):
                self.commands.cancel_transfer(t.id)

    def _dismiss_selected(self) -> None:
        for it in self.alerts.selectedItems():
            alert_id = it.data(ALERT_ROLE)
            if alert_id is not None:
                self.commands.dismiss_alert(int(alert_id))

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the window hides it; the app keeps running in the tray."""
        event.ignore()
        self.hide()
