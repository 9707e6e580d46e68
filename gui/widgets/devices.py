"""The Devices view: accounts, their annexsync devices, presence, last seen, paired or not.

Renders ``Status.devices`` and ``Status.xmpp`` (core.status) as given; no core
object is touched (gui reaches the core through the facade and the bridge).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

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
    return [d.name, presence, seen, tr("paired") if d.paired else tr("not paired")]


class DevicesView(QWidget):
    def __init__(self, tr: Callable[[str], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tr = tr
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.account = QLabel()
        self.account.setObjectName("devices-account")
        self.account.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setObjectName("devices")
        self.tree.setHeaderLabels([tr("Account / device"), tr("Presence"), tr("Last seen"),
                                   tr("Paired")])  # fmt: skip
        lay.addWidget(self.account)
        lay.addWidget(self.tree, 1)

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
            QTreeWidgetItem(parent, cells)

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
                out.append((top.text(0), [child.text(c) for c in range(4)]))
        return out

    def device_texts(self) -> list[str]:
        """``name: presence`` per device (for tests and accessibility)."""
        return [f"{cells[0]}: {cells[1]}" for _, cells in self._current()]
