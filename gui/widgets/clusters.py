"""The cluster view (issue 17): each cluster's nodes, and where one file's copies are.

Renders ``RepoStatus.clusters`` (core.status.ClusterStatus) as given: per
cluster the gateway it is reached through, how many nodes answer, what the
location logs say the cluster holds; per node reachable or not (with the
reason), its keys and bytes.  Below, a file of the selected cluster's folder
can be looked up: the copies the logs know of (the cluster shown, never
counted, clusters.md 4.4) and whether dropping it here is safe now, which is
the drop's own numcopies check run by the core (``Core.file_copies``), not a
second opinion computed here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.clusterview import FileCopies
from core.status import ClusterStatus, NodeStatus, Status
from gui import format as fmt

REPO_ROLE = 0x0100 + 20  # Qt.UserRole + 20: the folder a cluster row belongs to

# (repo, file) -> a task whose result is the FileCopies
Lookup = Callable[[str, str], "asyncio.Task[Any]"]


def node_state(n: NodeStatus, tr: Callable[[str], str]) -> str:
    if n.reachable is None:
        return tr("not checked yet")
    if n.reachable:
        return tr("reachable")
    return tr("unreachable") + (f": {n.error}" if n.error else "")


def cluster_cells(c: ClusterStatus, tr: Callable[[str], str]) -> list[str]:
    via = tr("through %1").replace("%1", c.via) if c.via else tr("this folder is its gateway")
    reach = tr("%1 of %2 nodes reachable").replace("%1", str(c.reachable_nodes)).replace(
        "%2", str(len(c.nodes)))
    return [c.name, str(c.keys), fmt.size(c.bytes), f"{via}; {reach}"]


def node_cells(n: NodeStatus, tr: Callable[[str], str]) -> list[str]:
    return [n.name, str(n.keys), fmt.size(n.bytes), node_state(n, tr)]


def copies_text(f: FileCopies, tr: Callable[[str], str]) -> str:
    """The per-file answer in words."""
    where = ", ".join(c.name + (f" ({tr('node of')} {c.node_of})" if c.node_of else "")
                      for c in f.copies) or tr("nowhere known")  # fmt: skip
    head = tr("%1: %2 copies (numcopies %3): %4").replace("%1", f.path).replace(
        "%2", str(f.count)).replace("%3", str(f.numcopies)).replace("%4", where)
    verdict = tr("safe to drop here") if f.safe_to_drop else tr("not safe to drop here")
    return f"{head}\n{verdict}: {f.reason}"


class ClustersView(QWidget):
    def __init__(self, tr: Callable[[str], str], lookup: Lookup,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._tr, self._lookup = tr, lookup
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.empty = QLabel(tr("No cluster: none of your folders uses one or is the gateway of one."))
        self.empty.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setObjectName("clusters")
        self.tree.setHeaderLabels([tr("Cluster / node"), tr("Keys"), tr("Size"), tr("State")])
        lay.addWidget(self.empty)
        lay.addWidget(self.tree, 1)
        row = QHBoxLayout()
        self.file = QLineEdit()
        self.file.setObjectName("cluster-file")
        self.file.setPlaceholderText(tr("a file in the folder, e.g. Photos/harbour.jpg"))
        self.file.returnPressed.connect(self.look_up)
        self.check = QPushButton(tr("Where are the copies?"))
        self.check.setObjectName("cluster-check")
        self.check.clicked.connect(self.look_up)
        row.addWidget(self.file, 1)
        row.addWidget(self.check)
        lay.addLayout(row)
        self.answer = QLabel()
        self.answer.setObjectName("cluster-answer")
        self.answer.setWordWrap(True)
        lay.addWidget(self.answer)
        self._shown: list[tuple[str, list[str], list[list[str]]]] = []

    def show_status(self, status: Status) -> None:
        rows = [(r.path, cluster_cells(c, self._tr), [node_cells(n, self._tr) for n in c.nodes])
                for r in status.repos for c in r.clusters]  # fmt: skip
        has = bool(rows)
        self.empty.setVisible(not has)
        for w in (self.tree, self.file, self.check, self.answer):
            w.setVisible(has)
        if rows == self._shown:
            return
        selected = self.selected_repo()
        self._shown = rows
        self.tree.clear()
        for repo, cells, nodes in rows:
            item = QTreeWidgetItem(self.tree, cells)
            item.setData(0, REPO_ROLE, repo)
            item.setToolTip(0, repo)
            for n in nodes:
                child = QTreeWidgetItem(item, n)
                child.setToolTip(3, n[3])
            item.setExpanded(True)
            if repo == selected:
                self.tree.setCurrentItem(item)
        for col in range(4):
            self.tree.resizeColumnToContents(col)

    def selected_repo(self) -> str | None:
        """The folder of the selected cluster (or of the first one)."""
        item = self.tree.currentItem() or self.tree.topLevelItem(0)
        while item is not None and item.parent() is not None:
            item = item.parent()
        return None if item is None else str(item.data(0, REPO_ROLE))

    def look_up(self) -> None:
        repo, path = self.selected_repo(), self.file.text().strip()
        if repo is None or not path:
            return
        self.answer.setText(self._tr("Looking for the copies of %1…").replace("%1", path))
        task = self._lookup(repo, path)
        task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        e = task.exception()
        if e is not None:
            self.answer.setText(str(e))
            return
        self.answer.setText(copies_text(task.result(), self._tr))

    def texts(self) -> list[list[str]]:
        """Cluster rows then their node rows, as shown (for tests and accessibility)."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            assert item is not None
            out.append([item.text(c) for c in range(4)])
            for j in range(item.childCount()):
                child = item.child(j)
                assert child is not None
                out.append([child.text(c) for c in range(4)])
        return out
