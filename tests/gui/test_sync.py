"""Two instances syncing a folder through a path remote, driven through the GUI.

As the core's own tests/integration/test_daemon.py, but every step goes through
the tray app: the first-run wizard makes both repositories (B is a git clone of
A), A's settings dialog adds B as a remote and sets a bandwidth limit, and the
results are read from the main windows: the transfer's progress, the conflict
row, the resolver dialog.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QWizard

from core.status import Health
from gui.models.transfers import PROGRESS_ROLE, TRANSFER_ROLE
from tests.conftest import git
from tests.gui.test_honest import record_messages

BOUND = 45.0


@dataclass
class Pair:
    a: Any
    b: Any
    pa: Path
    pb: Path


def _wizard(app: Any, folder: Path, name: str, wait: Any) -> None:
    wz = app.wizard
    assert wz is not None and wz.isVisible()
    wz.folder_page.path.setText(str(folder))
    wz.folder_page.description.setText(name)
    wz.button(QWizard.WizardButton.FinishButton).click()
    wait(lambda: not wz.isVisible() and app.bridge.status.repos, BOUND, f"wizard {name}")


def _synced(app: Any) -> bool:
    s = app.bridge.status
    return s.health(time.time()) is Health.SYNCED and all(
        rm.reachable for r in s.repos for rm in r.remotes)


def _pair(make_app: Any, wait: Any, tmp_path: Path, bandwidth_kb: int = 0) -> Pair:
    pa, pb = tmp_path / "A", tmp_path / "B"
    a = make_app("a")
    _wizard(a, pa, "A", wait)
    (pa / "seed.txt").write_text("seed\n")
    wait(lambda: _synced(a) and git(pa, "log", "--oneline", check=False).strip(), BOUND, "seed")
    git(tmp_path, "clone", "-q", str(pa), "B")
    b = make_app("b")
    _wizard(b, pb, "B", wait)
    for app in (a, b):
        if bandwidth_kb:
            dlg = app.open_settings()
            dlg.bandwidth.setValue(bandwidth_kb)
            dlg.buttons.button(QDialogButtonBox.StandardButton.Apply).click()
            wait(lambda app=app: app.core.settings.bandwidth_limit == bandwidth_kb * 1000, 10)
    dlg = a.open_settings()
    dlg.tabs.setCurrentIndex(1)
    dlg.remote_repo.setCurrentText(str(pa))
    dlg.remote_name.setText("b")
    dlg.remote_url.setText(str(pb))
    dlg.add_remote_button.click()
    wait(lambda: dlg.remotes.count() == 1 and dlg.remotes.item(0).text().startswith("b "), BOUND,
         "remote listed in settings")
    wait(lambda: _text(pb / "seed.txt") == "seed\n",
         BOUND, "seed in B")
    wait(lambda: _synced(a) and _synced(b), BOUND, "both synced")
    return Pair(a, b, pa, pb)


def test_change_in_one_instance_appears_in_the_other(make_app: Any, wait: Any,
                                                     tmp_path: Path) -> None:
    p = _pair(make_app, wait, tmp_path)
    win_b = p.b.open_window()
    data = os.urandom(200_000)
    (p.pa / "photo.jpg").write_bytes(data)
    wait(lambda: (p.pb / "photo.jpg").exists() and (p.pb / "photo.jpg").read_bytes() == data,
         BOUND, "photo.jpg in B")
    wait(lambda: _synced(p.a) and _synced(p.b), BOUND, "synced again")
    # B's window lists its remote with a last-sync time, and the icon says synced.
    top = win_b.repos.topLevelItem(0)
    assert top.childCount() == 1
    wait(lambda: any(w in win_b.repos.topLevelItem(0).child(0).text(1) for w in ("ago", "just now"))
         and _synced(p.b), BOUND, "last sync shown in B's window")
    p.b.tray.rebuild_menu()
    assert p.b.tray.named["remote-0-0"].text().strip().startswith("origin: last sync")
    # Sync now from B's tray menu is accepted and leaves both synced.
    p.b.tray.rebuild_menu()
    p.b.tray.named["sync-now"].trigger()
    wait(lambda: p.b.actions.pending == 0, 10)
    wait(lambda: _synced(p.a) and _synced(p.b), BOUND, "synced after sync now")


def test_transfer_shows_progress_and_finishes(make_app: Any, wait: Any, tmp_path: Path) -> None:
    p = _pair(make_app, wait, tmp_path, bandwidth_kb=1500)
    windows = [p.a.open_window(), p.b.open_window()]
    for w in windows:
        w.tabs.setCurrentIndex(1)
    seen: list[tuple[str, int, str]] = []

    def record(_status: object) -> None:
        for w in windows:
            m = w.transfers_model
            for row in range(m.rowCount()):
                t = m.index(row, 0).data(TRANSFER_ROLE)
                seen.append((t.state, m.index(row, 2).data(PROGRESS_ROLE), t.path))

    for app in (p.a, p.b):
        app.bridge.statusChanged.connect(record)
    data = os.urandom(3_000_000)
    (p.pa / "video.mkv").write_bytes(data)
    wait(lambda: (p.pb / "video.mkv").exists() and (p.pb / "video.mkv").read_bytes() == data,
         BOUND, "video.mkv in B")
    wait(lambda: any(s == "done" and f == "video.mkv" for s, _, f in seen), BOUND, "done row")
    partial = [pct for s, pct, f in seen if s == "running" and f == "video.mkv" and 0 < pct < 100]
    assert partial, f"no partial progress shown: {seen[:20]}"
    assert not any(w.no_transfers.isVisibleTo(w) for w in windows if w.transfers_model.rowCount())


def test_conflict_flagged_once_and_resolved_in_the_dialog(make_app: Any, wait: Any, run: Any,
                                                          tmp_path: Path) -> None:
    p = _pair(make_app, wait, tmp_path)
    # Each version is named by the first line of its location log, which counts whole
    # seconds (as git-annex's): a copy logged in the second its version was added ties
    # with the add, and then neither version can be named.  At 5 bytes/s every copy of
    # these 7-byte versions takes 1.4 s, so it is logged in a later second.
    for app in (p.a, p.b):
        run(app.core.update_settings(app.core.settings.replace(bandwidth_limit=5)))
    flagged: list[str] = []
    p.a.bridge.conflictFound.connect(lambda c: flagged.append(c.path))
    recorded = record_messages(p.a)  # what reaches QSystemTrayIcon.showMessage (issue 18)
    for app in (p.a, p.b):
        app.tray.rebuild_menu()
        app.tray.named["pause"].trigger()
    wait(lambda: p.a.core.status.paused_until and p.b.core.status.paused_until, 10)
    (p.pa / "seed.txt").write_text("from A\n")
    (p.pb / "seed.txt").write_text("from B\n")
    wait(lambda: p.a.bridge.status.repos[0].uncommitted and p.b.bridge.status.repos[0].uncommitted,
         BOUND, "changes seen while paused")
    for app in (p.a, p.b):
        app.tray.rebuild_menu()
        app.tray.named["resume"].trigger()
    win = p.a.open_window()
    wait(lambda: win.conflicts.count() == 1 and len(
        win.conflicts.item(0).data(Qt.ItemDataRole.UserRole + 10).variants) == 2, BOUND,
        "conflict row in A's window")
    assert p.a.tray.health is Health.ATTENTION
    conflict = win.conflicts.item(0).data(Qt.ItemDataRole.UserRole + 10)
    wait(lambda: any((p.pa / v).exists() and (p.pa / v).read_text() == "from B\n"
                     for v in conflict.variants), BOUND, "B's variant in A")
    assert flagged == ["seed.txt"]
    # each version with the device it came from: B's through the remote "b", A's here
    # (the first location B logged may reach A after the conflict was first listed)
    def origins() -> dict[str, str]:
        c = win.conflicts.item(0).data(Qt.ItemDataRole.UserRole + 10)
        return {(p.pa / v).read_text(): c.origin(v) for v in c.variants}
    wait(lambda: origins() == {"from A\n": "this device", "from B\n": "b"}, BOUND,
         "each version named with its device")
    conflict = win.conflicts.item(0).data(Qt.ItemDataRole.UserRole + 10)
    notified = [text for _title, text in recorded]
    assert len([n for n in notified if "seed.txt was changed on two devices" in n]) == 1, notified

    # The resolver: open both, then keep B's version.
    win.conflicts.itemActivated.emit(win.conflicts.item(0))
    dlg = p.a.conflict_dialogs[(str(p.pa), "seed.txt")]
    assert dlg.isVisible()
    lines = [dlg.variants.item(i).text() for i in range(dlg.variants.count())]
    assert sorted(line.split(" — ")[0].split(", ")[1] for line in lines) == [
        "from b", "from this device"], lines
    dlg.open_both.click()
    assert sorted(p.a.opened) == sorted(str(p.pa / v) for v in conflict.variants)
    keep = next(v for v in conflict.variants if (p.pa / v).read_text() == "from B\n")
    dlg.variants.setCurrentRow(list(conflict.variants).index(keep))
    dlg.pick.click()
    assert app_confirm_shown(dlg), "keeping one version asks before the other is deleted"
    next(b for b in dlg.confirm.buttons() if b.text() == "Keep it, delete the others").click()
    wait(lambda: not dlg.isVisible(), BOUND, "dialog closes once resolved")
    wait(lambda: not p.a.bridge.status.repos[0].conflicts, BOUND, "conflict gone")
    assert (p.pa / "seed.txt").read_text() == "from B\n"
    wait(lambda: win.conflicts.count() == 0 and not win.conflicts.isVisibleTo(win), 5)
    wait(lambda: not p.b.bridge.status.repos[0].conflicts
         and _text(p.pb / "seed.txt") == "from B\n", BOUND, "B follows")
    wait(lambda: _synced(p.a) and _synced(p.b), BOUND, "both synced after resolving")
    assert flagged == ["seed.txt"], "flagged once"


def app_confirm_shown(dlg: Any) -> bool:
    return bool(dlg.confirm.isVisible())


def _text(path: Path) -> str | None:
    """The file's text, or None while a merge has it replaced or absent."""
    try:
        return path.read_text()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return None


def test_two_slots_carry_two_transfers_to_one_remote_at_once(make_app: Any, wait: Any,
                                                           tmp_path: Path) -> None:
    """Issue 19: with the default 2 slots and one remote, both slots are used --
    the window's transfer list shows two files to the same remote running at once."""
    p = _pair(make_app, wait, tmp_path, bandwidth_kb=400)
    assert p.a.core.settings.transfer_slots == 2
    windows = [p.a.open_window(), p.b.open_window()]
    most: list[set[str]] = []

    def record(_status: object) -> None:
        for w in windows:
            m = w.transfers_model
            rows = [m.index(r, 0).data(TRANSFER_ROLE) for r in range(m.rowCount())]
            running = [t for t in rows if t.state == "running"]
            if len(running) >= 2 and len({(t.direction, t.remote) for t in running}) == 1:
                most.append({t.path for t in running})

    for app in (p.a, p.b):
        app.bridge.statusChanged.connect(record)
    first, second = os.urandom(1_500_000), os.urandom(1_500_000)
    (p.pa / "one.bin").write_bytes(first)
    (p.pa / "two.bin").write_bytes(second)
    wait(lambda: bool(most), BOUND, "two transfers to one remote running at once")
    assert most[0] == {"one.bin", "two.bin"}
    wait(lambda: _text_bytes(p.pb / "one.bin") == first and _text_bytes(p.pb / "two.bin") == second,
         BOUND, "both files in B")


def _text_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
