"""Render checks: views handed real ``core.status`` values (no core needed)."""

from __future__ import annotations

import math
import time
from collections import Counter

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPalette

from core.status import Alert, Conflict, Health, RemoteStatus, RepoStatus, Status, TransferStatus
from gui import format as fmt
from gui.icons import ICON_DIR, progress_icon, state_icon, state_path
from gui.models.transfers import PROGRESS, PROGRESS_ROLE, STATE, TransfersModel
from gui.tray import headline, remote_line

NOW = 1_800_000_000.0


def tr(s: str) -> str:
    return s


def repo(**kw: object) -> RepoStatus:
    return RepoStatus(path="/r", uuid="u", description="here", **kw)  # type: ignore[arg-type]


def test_every_state_has_its_own_icon_shape_and_colour(qapp: object) -> None:
    images: dict[Health, QImage] = {}
    for h in Health:
        assert state_path(h).is_file(), h
        img = state_icon(h).pixmap(32, 32).toImage()
        assert not img.isNull()
        images[h] = img
    # Shapes differ: the set of opaque pixels differs for every pair of states.
    masks = {h: tuple(img.pixelColor(x, y).alpha() > 128 for x in range(32) for y in range(32))
             for h, img in images.items()}
    assert len(set(masks.values())) == len(Health)
    # Colours differ too: each icon's most common opaque colour, and the ones that
    # carry meaning have it (issue 18: the old check, ``assert fills``, could not fail).
    fills = {h: _main_colour(img) for h, img in images.items()}
    assert len({c.name() for c in fills.values()}) == len(Health), fills
    green, red = fills[Health.SYNCED], fills[Health.ERROR]
    assert green.green() > green.red() + 60 and green.green() > green.blue() + 60, green.name()
    assert red.red() > red.green() + 100 and red.red() > red.blue() + 100, red.name()
    assert len({state_path(h).read_text() for h in Health}) == len(Health)
    assert sorted(p.name for p in ICON_DIR.glob("tray-*.svg")) == sorted(
        f"tray-{h.name.lower()}.svg" for h in Health)


def _main_colour(img: QImage) -> QColor:
    """The most common opaque colour of an icon (its fill)."""
    counts: Counter[int] = Counter(
        img.pixel(x, y) for x in range(img.width()) for y in range(img.height())
        if img.pixelColor(x, y).alpha() > 250)
    return QColor.fromRgba(counts.most_common(1)[0][0])


def test_progress_icon_draws_over_syncing(qapp: object) -> None:
    a = progress_icon(0.1).pixmap(32, 32).toImage()
    b = progress_icon(0.9).pixmap(32, 32).toImage()
    assert a != b


def test_headline_never_says_synced_while_work_is_pending() -> None:
    pending = Status(repos=(repo(uncommitted=1),))
    assert pending.health(NOW) is Health.SYNCING
    assert headline(pending, NOW, tr).startswith("Syncing")
    assert headline(Status(repos=(repo(),)), NOW, tr) == "Everything synced"
    paused = Status(repos=(repo(),), paused_until=math.inf)
    assert headline(paused, NOW, tr) == "Paused"
    until = Status(repos=(repo(),), paused_until=NOW + 3600)
    assert headline(until, NOW, tr) == "Paused until " + fmt.clock(NOW + 3600, NOW)
    waiting = Status(repos=(repo(remotes=(RemoteStatus("nas", None, "path", False, None, NOW - 60),)),))
    assert headline(waiting, NOW, tr).startswith("Waiting for a device since")
    assert headline(Status(repos=(repo(),), online=False), NOW, tr).startswith("Offline")
    c = Conflict("/r", "a.txt", ("a.variant-1.txt", "a.variant-2.txt"))
    assert headline(Status(repos=(repo(conflicts=(c,)),)), NOW, tr) == "1 conflict(s) need you"
    assert headline(Status(repos=(repo(error="broken"),)), NOW, tr) == "Error: broken"
    long = Status(repos=(repo(error="git said:\n" + "x " * 300),))  # the window shows it all
    assert headline(long, NOW, tr) == "Error: git said: " + ("x " * 300).strip()
    assert len(remote_line(RemoteStatus("r", None, "p2p", None, error="y" * 300), NOW, tr)) <= 60
    failed = Status(repos=(repo(merge_error="could not merge synced/main: no"),))
    assert headline(failed, NOW, tr) == "Error: could not merge synced/main: no"


def test_remote_lines_count_down_and_show_waiting() -> None:
    push = RemoteStatus("phone", "u2", "p2p", True, NOW - 120, None, NOW + 25)
    assert remote_line(push, NOW, tr) == "phone: pushing, times out in 25 s"
    assert remote_line(push, NOW + 10, tr) == "phone: pushing, times out in 15 s"
    synced = RemoteStatus("phone", "u2", "p2p", True, NOW - 120)
    assert remote_line(synced, NOW, tr) == "phone: last sync 2 min ago"
    never = RemoteStatus("usb", None, "path", None)
    assert remote_line(never, NOW, tr) == "usb: last sync never"
    gone = RemoteStatus("nas", None, "path", False, None, NOW - 60)
    assert remote_line(gone, NOW, tr).startswith("nas: waiting since ")


def test_transfers_model_updates_rows_in_place(qapp: object) -> None:
    m = TransfersModel()
    t = TransferStatus(1, "/r", "big.bin", "K", "download", "a", 0, 1000, 0.0, "running")
    m.set_status(Status(repos=(repo(transfers=(t,)),)))
    assert m.rowCount() == 1
    changed: list[int] = []
    m.dataChanged.connect(lambda a, b, *_: changed.append(a.row()))
    resets: list[int] = []
    m.modelReset.connect(lambda: resets.append(1))
    t2 = TransferStatus(1, "/r", "big.bin", "K", "download", "a", 500, 1000, 2e6, "running")
    m.set_status(Status(repos=(repo(transfers=(t2,)),)))
    assert changed == [0] and not resets
    assert m.index(0, PROGRESS).data(PROGRESS_ROLE) == 50
    assert "50%" in m.index(0, PROGRESS).data(Qt.ItemDataRole.DisplayRole)
    assert m.index(0, STATE).data() == "running"


class StaticBridge:  # a bridge over a fixed snapshot: render-only checks
    def __init__(self, status: Status) -> None:
        from PySide6.QtCore import QObject, Signal

        self.status = status

        class _S(QObject):
            statusChanged = Signal(object)
            alertRaised = Signal(object)
            conflictFound = Signal(object)

        self._s = _S()
        self.statusChanged = self._s.statusChanged
        self.alertRaised = self._s.alertRaised
        self.conflictFound = self._s.conflictFound

    def now(self) -> float:
        return NOW


@pytest.mark.parametrize("dark", [False, True])
def test_main_window_renders_small_and_dark(qapp, qtbot, dark: bool) -> None:  # type: ignore[no-untyped-def]
    """The dashboard fits 360×300 and uses the palette (no fixed light colours)."""
    from PySide6.QtWidgets import QApplication

    from gui.windows.main_window import MainWindow

    old = QApplication.palette()
    if dark:
        pal = QPalette()
        for role, colour in ((QPalette.ColorRole.Window, "#202124"),
                             (QPalette.ColorRole.WindowText, "#e8eaed"),
                             (QPalette.ColorRole.Base, "#292a2d"),
                             (QPalette.ColorRole.Text, "#e8eaed"),
                             (QPalette.ColorRole.Button, "#303134"),
                             (QPalette.ColorRole.ButtonText, "#e8eaed")):
            pal.setColor(role, colour)
        QApplication.setPalette(pal)
    try:
        t = TransferStatus(1, "/r", "big.bin", "K", "upload", "a", 300, 1000, 1e5, "running")
        status = Status(repos=(repo(transfers=(t,), remotes=(
            RemoteStatus("a", "u1", "path", True, NOW - 30),)),),
            alerts=(Alert(1, "info", "Synced with a", NOW - 5),), activity=("Synced with a",))
        w = MainWindow(StaticBridge(status), None, resolve_conflict=lambda c: None,  # type: ignore[arg-type]
                       open_settings=lambda: None, open_folder=lambda p: None)
        qtbot.addWidget(w)
        w.resize(360, 300)
        w.show()
        qtbot.waitExposed(w)
        assert w.minimumSizeHint().width() <= 360
        img = w.grab().toImage()
        bg = img.pixelColor(2, img.height() - 2)
        assert (bg.lightness() < 100) == dark
        assert w.headline.text() == "Syncing… 30%"
        assert w.repos.topLevelItem(0).child(0).text(1) == "last sync 30 s ago"
        assert w._repo_state(repo(merge_error="could not merge x")) == "error: could not merge x"
        assert w.headline.palette().color(QPalette.ColorRole.WindowText).lightness() > 128 or not dark
    finally:
        QApplication.setPalette(old)


def test_format_helpers() -> None:
    assert fmt.duration(5) == "5 s"
    assert fmt.duration(125) == "2 min"
    assert fmt.ago(None, NOW) == "never"
    assert fmt.ago(NOW - 1, NOW) == "just now"
    t = fmt.tomorrow_morning(time.mktime((2026, 3, 4, 22, 0, 0, 0, 0, -1)))
    assert time.localtime(t)[:5] == (2026, 3, 5, 8, 0)


def test_cluster_shows_as_one_remote_with_its_nodes(qapp, qtbot) -> None:  # type: ignore[no-untyped-def]
    """clusters.md 4.1: proxied remotes under their gateway, nodes under the cluster;
    the tray shows the cluster, not each node."""
    from gui.windows.main_window import MainWindow

    nodes = ("origin-node1", "origin-node2")
    remotes = (RemoteStatus("origin", "g", "p2p", True, NOW - 30),
               RemoteStatus("origin-node1", "n1", "p2p", True, NOW - 30, via="origin"),
               RemoteStatus("origin-mycluster", "ac", "cluster", True, NOW - 30, via="origin",
                            nodes=nodes),
               RemoteStatus("origin-node2", "n2", "p2p", True, NOW - 30, via="origin"),
               RemoteStatus("origin-extra", "x", "p2p", True, NOW - 30, via="origin"))
    status = Status(repos=(repo(remotes=remotes),))
    w = MainWindow(StaticBridge(status), None, resolve_conflict=lambda c: None,  # type: ignore[arg-type]
                   open_settings=lambda: None, open_folder=lambda p: None)
    qtbot.addWidget(w)
    top = w.repos.topLevelItem(0)
    assert top.childCount() == 1 and top.child(0).text(0) == "origin"
    gw = top.child(0)
    assert sorted(gw.child(i).text(0) for i in range(gw.childCount())) == [
        "origin-extra", "origin-mycluster"]
    cluster = next(gw.child(i) for i in range(gw.childCount())
                   if gw.child(i).text(0) == "origin-mycluster")
    assert [cluster.child(i).text(0) for i in range(cluster.childCount())] == list(nodes)

    from gui.tray import Tray

    def nothing(*a: object) -> None:
        return None

    from types import SimpleNamespace

    actions = SimpleNamespace(pause=nothing, resume=nothing, sync_now=nothing)
    tray = Tray(StaticBridge(status), actions, open_window=nothing, open_settings=nothing,  # type: ignore[arg-type]
                open_folder=nothing, resolve_conflict=nothing, quit=nothing)
    lines = [a.text().strip() for n, a in tray.named.items() if n.startswith("remote-")]
    assert [t.split(":")[0] for t in lines] == ["origin", "origin-mycluster", "origin-extra"]
    tray.dispose()
