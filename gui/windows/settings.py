"""The settings dialog: folders, remotes, what to sync, network, start at login, XMPP account.

Commands that change the core's repositories (add/remove a folder, add a
remote, preferred content) run at once through ``Actions``.  The plain
settings (bandwidth, transfer slots, start at login, XMPP address) are applied
with *Apply*/*OK* via ``Core.update_settings``; start at login also writes or
removes the XDG autostart entry.  The XMPP account page signs in for real
through ``Core.xmpp_login``, which keeps the address and the password (OS
keyring only) only after the login worked, and removes the old address's
password; it shows the connection state from ``Status.xmpp`` in words.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.settings import Settings
from core.status import Status
from gui import autostart
from gui.actions import Actions
from gui.bridge import Bridge
from gui.widgets.devices import account_line

logger = logging.getLogger(__name__)

PRESETS = (  # (label, expression); labels translated where shown
    ("Everything", "standard"),
    ("Only files I get myself", "manual"),
    ("Nothing (metadata only)", "exclude=*"),
)


class SettingsDialog(QDialog):
    """Settings; non-modal, one instance kept by the app."""

    def __init__(
        self,
        bridge: Bridge,
        actions: Actions,
        *,
        settings: Callable[[], Settings],
        config_dir: Path | None,
        add_folder: Callable[[], object],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge, self.commands = bridge, actions
        self._settings, self._config_dir, self._add_folder = settings, config_dir, add_folder
        self.setObjectName("settings-dialog")
        self.setWindowTitle(self.tr("annexsync settings"))
        self.resize(520, 400)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._folders_page(), self.tr("Folders"))
        self.tabs.addTab(self._remotes_page(), self.tr("Remotes"))
        if self._can_set_preferred():
            self.tabs.addTab(self._wanted_page(), self.tr("What to sync"))
        self.tabs.addTab(self._network_page(), self.tr("Network"))
        self.tabs.addTab(self._general_page(), self.tr("General"))
        self.tabs.addTab(self._xmpp_page(), self.tr("XMPP account"))
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Apply
            | QDialogButtonBox.StandardButton.Close)
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        self.buttons.accepted.connect(self._ok)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)
        actions.failed.connect(self._say)
        bridge.statusChanged.connect(self.show_status)
        self.load()
        self.show_status(bridge.status)

    # --- pages ----------------------------------------------------------------------

    def _folders_page(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        self.folders = QListWidget()
        self.folders.setObjectName("folders")
        lay.addWidget(self.folders, 1)
        row = QHBoxLayout()
        add = QPushButton(self.tr("Add folder…"))
        add.clicked.connect(self._add_folder)
        self.remove_folder = QPushButton(self.tr("Stop syncing this folder"))
        self.remove_folder.clicked.connect(self._on_remove_folder)
        row.addWidget(add)
        row.addWidget(self.remove_folder)
        row.addStretch(1)
        lay.addLayout(row)
        return w

    def _remotes_page(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        self.remote_repo = QComboBox()
        self.remote_repo.setObjectName("remote-repo")
        self.remote_repo.currentIndexChanged.connect(lambda _i: self.show_status(self.bridge.status))
        self.remotes = QListWidget()
        self.remotes.setObjectName("remotes")
        form = QFormLayout()
        form.addRow(self.tr("Folder:"), self.remote_repo)
        lay.addLayout(form)
        lay.addWidget(self.remotes, 1)
        add_form = QFormLayout()
        self.remote_name = QLineEdit()
        self.remote_name.setObjectName("remote-name")
        self.remote_name.setPlaceholderText(self.tr("e.g. usbdrive"))
        self.remote_url = QLineEdit()
        self.remote_url.setObjectName("remote-url")
        self.remote_url.setPlaceholderText(self.tr("a folder path or a URL"))
        self.add_remote_button = QPushButton(self.tr("Add remote"))
        self.add_remote_button.setObjectName("add-remote")
        self.add_remote_button.clicked.connect(self.add_remote)
        add_form.addRow(self.tr("Name:"), self.remote_name)
        add_form.addRow(self.tr("Location:"), self.remote_url)
        add_form.addRow("", self.add_remote_button)
        lay.addLayout(add_form)
        self._add_remote_edit_buttons(add_form)
        return w

    def _add_remote_edit_buttons(self, form: QFormLayout) -> None:
        """Change the selected remote's location, or remove it (issue 19)."""
        row = QHBoxLayout()
        self.change_remote_button = QPushButton(self.tr("Change location of selected"))
        self.change_remote_button.setObjectName("change-remote")
        self.change_remote_button.clicked.connect(self.change_remote)
        self.remove_remote_button = QPushButton(self.tr("Remove selected remote"))
        self.remove_remote_button.setObjectName("remove-remote")
        self.remove_remote_button.clicked.connect(self._on_remove_remote)
        row.addWidget(self.change_remote_button)
        row.addWidget(self.remove_remote_button)
        form.addRow("", row)

    def _selected_remote(self) -> str | None:
        item = self.remotes.currentItem()
        name = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return name if isinstance(name, str) else None

    def change_remote(self) -> asyncio.Task[Any] | None:
        """Point the selected remote at the location typed below."""
        name, url = self._selected_remote(), self.remote_url.text().strip()
        if name is None or not url:
            self._say(self.tr("Select a remote and type its new location."))
            return None
        self._say("")
        return self.commands.set_remote_url(self.remote_repo.currentText(), name, url)

    def _on_remove_remote(self) -> None:
        name, repo = self._selected_remote(), self.remote_repo.currentText()
        if name is None:
            self._say(self.tr("Select the remote to remove."))
            return
        box = QMessageBox(QMessageBox.Icon.Question, self.tr("Remove remote?"),
                          self.tr("Stop syncing with “%1”? Nothing stored there is deleted.")
                          .replace("%1", name), QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("confirm-remove-remote")
        remove = box.addButton(self.tr("Remove"), QMessageBox.ButtonRole.DestructiveRole)
        box.finished.connect(lambda _r: self.commands.remove_remote(repo, name)
                             if box.clickedButton() is remove else None)
        self.confirm = box
        box.open()

    def _can_set_preferred(self) -> bool:
        return callable(getattr(self.commands.core, "set_preferred_content", None))

    def _wanted_page(self) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        self.wanted_repo = QComboBox()
        self.wanted_preset = QComboBox()
        for label, expr in PRESETS:
            self.wanted_preset.addItem(self.tr(label), expr)
        self.wanted_preset.addItem(self.tr("Custom expression"), None)
        self.wanted_expr = QLineEdit()
        self.wanted_expr.setObjectName("wanted-expression")
        self.wanted_preset.currentIndexChanged.connect(self._on_preset)
        apply = QPushButton(self.tr("Set"))
        apply.clicked.connect(self.set_wanted)
        form.addRow(self.tr("Folder:"), self.wanted_repo)
        form.addRow(self.tr("Keep here:"), self.wanted_preset)
        form.addRow(self.tr("Expression:"), self.wanted_expr)
        form.addRow("", apply)
        return w

    def _network_page(self) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        self.bandwidth = QSpinBox()
        self.bandwidth.setObjectName("bandwidth")
        self.bandwidth.setRange(0, 10_000_000)
        self.bandwidth.setSingleStep(100)
        self.bandwidth.setSuffix(self.tr(" KB/s"))
        self.bandwidth.setSpecialValueText(self.tr("unlimited"))
        self.slots = QSpinBox()
        self.slots.setObjectName("transfer-slots")
        self.slots.setRange(1, 16)
        form.addRow(self.tr("Bandwidth limit:"), self.bandwidth)
        form.addRow(self.tr("Transfers at once:"), self.slots)
        return w

    def _general_page(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        self.start_at_login = QCheckBox(self.tr("Start annexsync when I log in"))
        self.start_at_login.setObjectName("start-at-login")
        lay.addWidget(self.start_at_login)
        lay.addStretch(1)
        return w

    def _xmpp_page(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        note = QLabel(self.tr(
            "An XMPP (Jabber) account lets your devices find each other over the internet. "
            "annexsync signs in before it keeps anything; the password is kept in your "
            "system keyring, never in a file."))
        note.setWordWrap(True)
        lay.addWidget(note)
        form = QFormLayout()
        self.jid = QLineEdit()
        self.jid.setObjectName("xmpp-jid")
        self.jid.setPlaceholderText(self.tr("you@example.org"))
        self.password = QLineEdit()
        self.password.setObjectName("xmpp-password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.xmpp_server = QLineEdit()
        self.xmpp_server.setObjectName("xmpp-server")
        self.xmpp_server.setPlaceholderText(self.tr("found from the address"))
        self.xmpp_ca = QLineEdit()
        self.xmpp_ca.setObjectName("xmpp-ca-file")
        self.xmpp_ca.setPlaceholderText(self.tr("only for a self-hosted server"))
        form.addRow(self.tr("Address:"), self.jid)
        form.addRow(self.tr("Password:"), self.password)
        form.addRow(self.tr("Server (optional):"), self.xmpp_server)
        form.addRow(self.tr("CA certificate file (optional):"), self.xmpp_ca)
        lay.addLayout(form)
        self.xmpp_state = QLabel()
        self.xmpp_state.setObjectName("xmpp-state")
        self.xmpp_state.setWordWrap(True)
        lay.addWidget(self.xmpp_state)
        row = QHBoxLayout()
        self.use_account = QPushButton(self.tr("Sign in"))
        self.use_account.setObjectName("xmpp-use")
        self.use_account.clicked.connect(self.save_account)
        self.forget_account = QPushButton(self.tr("Stop using this account"))
        self.forget_account.setObjectName("xmpp-forget")
        self.forget_account.clicked.connect(self.forget)
        row.addWidget(self.use_account)
        row.addWidget(self.forget_account)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addStretch(1)
        return w

    # --- state ----------------------------------------------------------------------

    def load(self) -> None:
        """Fill the fields from the saved settings."""
        s = self._settings()
        self.bandwidth.setValue((s.bandwidth_limit or 0) // 1000)
        self.slots.setValue(s.transfer_slots)
        # the autostart entry is the truth: the person may have removed it in their
        # desktop's settings, and then it stays removed (issue 21)
        self._login_shown = autostart.is_enabled()
        self.start_at_login.setChecked(self._login_shown)
        self.jid.setText(s.xmpp_account or "")
        self.xmpp_server.setText(s.xmpp_server or "")
        self.xmpp_ca.setText(s.xmpp_ca_file or "")
        self.forget_account.setEnabled(bool(s.xmpp_account))

    def edited(self) -> Settings:
        """The settings as edited in the dialog."""
        limit = self.bandwidth.value() * 1000
        return self._settings().replace(
            bandwidth_limit=limit or None,
            transfer_slots=self.slots.value(),
            start_at_login=self.start_at_login.isChecked(),
        )

    def show_status(self, status: Status) -> None:
        """Refresh the folder and remote lists and the XMPP connection state."""
        self.xmpp_state.setText(account_line(status.xmpp, self.tr))
        paths = [r.path for r in status.repos]
        if [self.folders.item(i).text() for i in range(self.folders.count())] != paths:
            self.folders.clear()
            self.folders.addItems(paths)
        self.remove_folder.setEnabled(bool(paths))
        combos = [self.remote_repo] + ([self.wanted_repo] if hasattr(self, "wanted_repo") else [])
        for combo in combos:
            if [combo.itemText(i) for i in range(combo.count())] != paths:
                current = combo.currentText()
                combo.blockSignals(True)
                combo.clear()
                combo.addItems(paths)
                if current in paths:
                    combo.setCurrentText(current)
                combo.blockSignals(False)
        repo = next((r for r in status.repos if r.path == self.remote_repo.currentText()), None)
        remotes = repo.remotes if repo else ()
        texts = [f"{rm.name} ({rm.kind})" for rm in remotes]
        if [self.remotes.item(i).text() for i in range(self.remotes.count())] != texts:
            self.remotes.clear()
            self.remotes.addItems(texts)
            for i, rm in enumerate(remotes):
                self.remotes.item(i).setData(Qt.ItemDataRole.UserRole, rm.name)
        self.add_remote_button.setEnabled(bool(paths))

    def _say(self, text: str) -> None:
        self.message.setText(text)

    # --- commands -------------------------------------------------------------------

    def apply(self) -> asyncio.Task[Any]:
        """Save the plain settings and make start-at-login match."""
        new = self.edited()
        self._say("")
        if new.start_at_login != self._login_shown:  # only a change made here writes or removes
            try:
                autostart.apply(new.start_at_login, self._config_dir)
            except OSError as e:  # said, and left said (issue 19: it was cleared at once)
                self._say(self.tr("Could not change start at login: %1").replace("%1", str(e)))
        self._login_shown = autostart.is_enabled()
        new = new.replace(start_at_login=self._login_shown)
        self.start_at_login.setChecked(self._login_shown)
        return self.commands.update_settings(new)

    def _ok(self) -> None:
        task = self.apply()
        task.add_done_callback(lambda t: None if t.cancelled() or t.exception() else self.accept())

    def _on_remove_folder(self) -> None:
        """Ask first (issue 19); the files stay either way, but syncing stops."""
        item = self.folders.currentItem()
        if item is None:
            return
        path = item.text()
        box = QMessageBox(QMessageBox.Icon.Question, self.tr("Stop syncing this folder?"),
                          self.tr("Stop syncing “%1”? Its files stay where they are; changes "
                                  "are no longer synced with your other devices.").replace("%1", path),
                          QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("confirm-stop-syncing")
        stop = box.addButton(self.tr("Stop syncing"), QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda _r: self.commands.remove_repository(path)
                             if box.clickedButton() is stop else None)
        self.confirm = box
        box.open()

    def add_remote(self) -> asyncio.Task[Any] | None:
        """Add the remote typed in the Remotes page to the chosen folder."""
        repo, name, url = (self.remote_repo.currentText(), self.remote_name.text().strip(),
                           self.remote_url.text().strip())
        if not (repo and name and url):
            self._say(self.tr("Name the remote and give its location."))
            return None
        self._say("")
        task = self.commands.add_remote(repo, name, url)
        def done(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is None:
                self.remote_name.clear()
                self.remote_url.clear()

        task.add_done_callback(done)
        return task

    def _on_preset(self, _index: int) -> None:
        expr = self.wanted_preset.currentData()
        if expr is not None:
            self.wanted_expr.setText(expr)

    def set_wanted(self) -> asyncio.Task[Any] | None:
        """Set the preferred content expression of the chosen folder."""
        repo, expr = self.wanted_repo.currentText(), self.wanted_expr.text().strip()
        if not repo or not expr:
            return None
        setter = self.commands.core.set_preferred_content  # type: ignore[attr-defined]
        return self.commands.submit("set_preferred_content", setter(repo, expr))

    def save_account(self) -> asyncio.Task[Any] | None:
        """Sign in for real; only a login that worked is kept (the core checks first)."""
        jid, password = self.jid.text().strip(), self.password.text()
        if "@" not in jid:
            self._say(self.tr("Enter an address like you@example.org."))
            return None
        if not password:
            self._say(self.tr("Enter the password of %1.").replace("%1", jid))
            return None
        self._say(self.tr("Signing in as %1…").replace("%1", jid))
        task = self.commands.submit("xmpp_login", self.commands.core.xmpp_login(
            jid, password, server=self.xmpp_server.text().strip() or None,
            ca_file=self.xmpp_ca.text().strip() or None))

        def done(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is None:
                self.password.clear()
                self.forget_account.setEnabled(True)
                self._say(self.tr("Signed in as %1; the password is in your keyring.")
                          .replace("%1", jid))

        task.add_done_callback(done)
        return task

    def forget(self) -> asyncio.Task[Any]:
        """Stop using the account; its password leaves the keyring."""
        task = self.commands.submit("xmpp_logout", self.commands.core.xmpp_logout())

        def done(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is None:
                self.jid.clear()
                self.xmpp_server.clear()
                self.xmpp_ca.clear()
                self.forget_account.setEnabled(False)
                self._say(self.tr("Signed out; the password was removed from your keyring."))

        task.add_done_callback(done)
        return task
