"""The Devices view: accounts, their annexsync devices, presence, last seen, paired or not,
the transport in use; "Pair a device…", "Join with a code…" and "Forget" (with confirmation).

Renders ``Status.devices`` and ``Status.xmpp`` (core.status) as given; no core
object is touched (gui reaches the core through the facade and the bridge).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.status import DeviceStatus, Status, XmppStatus
from gui import format as fmt

PRESENCE = {"online": "online", "away": "away (paused)", "offline": "offline",
            "unknown": "unknown (not connected)"}  # fmt: skip


def account_line(x: XmppStatus, tr: Callable[[str], str]) -> str:
    """The XMPP connection in words (also used by the account page)."""
    if x.state == "off" or not x.account:
        return tr("Not signed in to XMPP.")
    if x.state == "online":
        return tr("Signed in as %1.").replace("%1", x.account)
    if x.state == "connecting":
        return tr("Signing in as %1…").replace("%1", x.account)
    if x.state == "error":
        return tr("Cannot sign in as %1: %2").replace("%1", x.account).replace("%2", x.error or "")
    why = f" ({x.error})" if x.error else ""
    return tr("Not connected; trying again soon%1").replace("%1", why)


def device_cells(d: DeviceStatus, now: float, tr: Callable[[str], str]) -> list[str]:
    presence = tr(PRESENCE[d.presence])
    if d.waiting:
        presence += tr(", changes waiting for it")
    seen = tr("now") if d.presence == "online" else fmt.ago(d.last_seen, now)
    return [d.name, presence, seen, tr("paired") if d.paired else tr("not paired"),
            d.transport or "", d.device_id if d.paired else ""]


COLUMNS = 5  # the last cell (the device id of a paired device) is kept as item data


class DevicesView(QWidget):
    def __init__(self, tr: Callable[[str], str], parent: QWidget | None = None, *,
                 pair: Callable[[], object] | None = None, join: Callable[[], object] | None = None,
                 forget: Callable[[str], object] | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._tr = tr
        self._forget = forget
        self.confirm: QMessageBox | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.account = QLabel()
        self.account.setObjectName("devices-account")
        self.account.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setObjectName("devices")
        self.tree.setHeaderLabels([tr("Account / device"), tr("Presence"), tr("Last seen"),
                                   tr("Paired"), tr("Transport")])  # fmt: skip
        lay.addWidget(self.account)
        lay.addWidget(self.tree, 1)
        row = QHBoxLayout()
        for name, text, slot in (("devices-pair", tr("Pair a device…"), pair),
                                 ("devices-join", tr("Join with a code…"), join),
                                 ("devices-forget", tr("Forget…"), self._ask_forget)):  # fmt: skip
            button = QPushButton(text)
            button.setObjectName(name)
            button.setEnabled(slot is not None)
            if slot is not None:
                button.clicked.connect(lambda _c=False, s=slot: s())
            row.addWidget(button)
        row.addStretch(1)
        lay.addLayout(row)

    def selected_device(self) -> tuple[str, str] | None:
        """(device id, name) of the selected paired device."""
        item = self.tree.currentItem()
        device_id = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        return (str(device_id), item.text(0)) if item is not None and device_id else None

    def _ask_forget(self) -> None:
        chosen = self.selected_device()
        if chosen is None or self._forget is None:
            return
        device_id, name = chosen
        box = QMessageBox(QMessageBox.Icon.Question, self._tr("Forget device"),
                          self._tr("Forget %1? Its key, record and remotes are removed; pairing "
                                   "again needs a new code.").replace("%1", name),
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("forget-confirm")
        forget = self._forget
        box.accepted.connect(lambda: forget(device_id))
        self.confirm = box
        box.open()

    def show_status(self, status: Status, now: float) -> None:
        self.account.setText(account_line(status.xmpp, self._tr))
        rows = self.rows(status, now)
        if rows == self._current():
            return
        self.tree.clear()
        groups: dict[str, QTreeWidgetItem] = {}
        for group, cells in rows:
            parent = groups.get(group)
            if parent is None:
                parent = groups[group] = QTreeWidgetItem(self.tree, [group])
                parent.setExpanded(True)
            item = QTreeWidgetItem(parent, cells[:COLUMNS])
            item.setData(0, Qt.ItemDataRole.UserRole, cells[COLUMNS] or None)

    def rows(self, status: Status, now: float) -> list[tuple[str, list[str]]]:
        mine = status.xmpp.account
        out = []
        for d in status.devices:
            group = d.account or self._tr("not seen over XMPP")
            if d.account and d.account == mine:
                group = self._tr("Your devices (%1)").replace("%1", d.account)
            out.append((group, device_cells(d, now, self._tr)))
        return out

    def _current(self) -> list[tuple[str, list[str]]]:
        out = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            assert top is not None
            for j in range(top.childCount()):
                child = top.child(j)
                assert child is not None
                device_id = child.data(0, Qt.ItemDataRole.UserRole) or ""
                out.append((top.text(0), [child.text(c) for c in range(COLUMNS)] + [device_id]))
        return out

    def device_texts(self) -> list[str]:
        """``name: presence`` per device (for tests and accessibility)."""
        return [f"{cells[0]}: {cells[1]}" for _, cells in self._current()]
