"""The pairing wizards between two app instances (two real cores, one test process).

"Pair a device…" on one, "Join with a code…" on the other, clicked through to
a paired state over a real prosody (both on one XMPP account: own devices
still need the code); the Devices view shows the peer paired with its
transport, and "Forget" (confirmed) removes it.  A wrong code is refused in
words, with nothing stored.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton

from core.devices.identity import load_or_create
from core.devices.paired import PairedStore
from tests.gui.conftest import FAST, make_repo

BOUND = 30.0
# A file's trip between paired devices over XMPP: the first one after pairing waits
# behind the first sync rounds, each git operation a fresh XMPP visit (seen: 35-45 s
# at load 15 on 2 cores, 130 s at load 18), so well past 60 s under load.
TRIP = 240.0
SLOW_RECORDS = dataclasses.replace(FAST, devices_refresh=600.0)


def _app(make_app: Any, run: Any, root: Path, name: str, device: str, server: Any,
         jid: str = "alice@localhost") -> Any:  # fmt: skip
    """An app instance whose core re-reads the paired records only when told
    (not every few seconds), so a new pairing must reach it by itself."""
    load_or_create(root / name, device)  # the device's name, not the host's
    repo = make_repo(root.parent / f"repo-{name}")
    app = make_app(name, core=make_app.make_core(name, timings=SLOW_RECORDS))
    run(app.core.add_repository(str(repo), create=False))
    app.core.settings = app.core.settings.replace(pairing_interface="127.0.0.1")
    app.core.pairing.lan_look = 0.5  # nothing on the LAN here: on to XMPP soon
    run(app.core.xmpp_login(jid, "pw", server=server.server, ca_file=str(server.cert)))
    return app


def _records(app: Any) -> list[Any]:
    ident = load_or_create(app.core.config_dir)
    return list(PairedStore(app.core.config_dir, ident.device_id).records())


@pytest.fixture
def two_apps(make_app: Any, run: Any, config_root: Path, real_keyring: object,
             xmpp_server: Any) -> tuple[Any, Any]:  # fmt: skip
    xmpp_server.register("alice", "pw")
    return (_app(make_app, run, config_root, "a", "laptop", xmpp_server),
            _app(make_app, run, config_root, "b", "desk", xmpp_server))  # fmt: skip


def _show_code(app: Any, wait: Any, friend: str | None = None) -> Any:
    app.tray.rebuild_menu()
    app.tray.named["pair-device"].trigger()  # reached from the tray menu
    dlg = app.pair_dialog
    if friend:
        dlg.friend.click()
        dlg.friend_jid.setText(friend)
    else:
        dlg.own.click()
    dlg.start.click()
    wait(lambda: dlg.code.text() != "", BOUND, "the code shown")
    wait(lambda: dlg.left.text().startswith("Time left"), BOUND, "the countdown")
    assert not dlg.qr.pixmap().isNull()
    return dlg


def _repo(app: Any) -> Path:
    (path,) = app.core.settings.repositories
    return Path(path)


def _syncing(a: Any, b: Any, wait: Any) -> None:
    """Paired and syncing: a file written on one side arrives, with its content,
    on the other, and one back (the repositories have no other remote)."""
    for src, dst, name in ((a, b, "there.txt"), (b, a, "back.txt")):
        data = f"{name} from {src.core.config_dir.name}\n" * 100
        (_repo(src) / name).write_text(data)  # the core adds and commits it
        wait(lambda: (_repo(dst) / name).is_file()  # noqa: B023
             and (_repo(dst) / name).read_text() == data, TRIP, f"{name} on the other side")  # noqa: B023


@pytest.mark.timeout(3 * TRIP)  # two trips and the pairing, not the suite's 120 s
def test_both_wizards_pair_two_instances_over_xmpp_and_forget(
        two_apps: tuple[Any, Any], wait: Any, qtbot: Any) -> None:  # fmt: skip
    a, b = two_apps
    shown = _show_code(a, wait)
    b.open_window().devices.findChild(QPushButton, "devices-join").click()  # the Devices view
    dlg = b.join_dialog
    qtbot.keyClicks(dlg.code, shown.code.text())
    dlg.join.click()
    wait(lambda: dlg.said.text().startswith("Paired with"), BOUND, "the joiner's outcome")
    wait(lambda: shown.said.text().startswith("Paired with"), BOUND, "the shower's outcome")
    assert dlg.said.text() == "Paired with laptop (over XMPP)."
    assert shown.said.text() == "Paired with desk (over XMPP)."
    assert [r.name for r in _records(a)] == ["desk"] and [r.name for r in _records(b)] == ["laptop"]
    _syncing(a, b, wait)

    view = a.open_window().devices

    def desk_row() -> Any:
        for i in range(view.tree.topLevelItemCount()):
            top = view.tree.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).text(0) == "desk" and top.child(j).text(3) == "paired":
                    return top.child(j)
        return None

    wait(desk_row, BOUND, "desk paired in the Devices view")
    row = desk_row()
    assert row.text(4) == "XMPP"  # the transport in use: it is online there
    view.tree.setCurrentItem(row)
    view.findChild(QPushButton, "devices-forget").click()
    box = view.confirm
    assert isinstance(box, QMessageBox) and "Forget desk?" in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()
    wait(lambda: _records(a) == [], BOUND, "desk forgotten")
    wait(lambda: desk_row() is None, BOUND, "desk gone from the Devices view")


def test_a_wrong_code_in_the_join_wizard_is_said_and_nothing_is_stored(
        two_apps: tuple[Any, Any], wait: Any, qtbot: Any) -> None:  # fmt: skip
    a, b = two_apps
    shown = _show_code(a, wait)
    np, first, second = shown.code.text().split("-")
    wrong = f"{np}-{first}-{'adroitness' if second != 'adroitness' else 'adviser'}"
    dlg = b.open_join()
    qtbot.keyClicks(dlg.code, wrong)
    qtbot.mouseClick(dlg.join, Qt.MouseButton.LeftButton)
    wait(lambda: dlg.said.text().startswith("Not paired"), BOUND, "the refusal")
    assert "the code did not match" in dlg.said.text()
    assert _records(a) == _records(b) == []
    shown.cancel.click()  # Cancel closes the window (the carrier cleans up)
    wait(lambda: shown.task is not None and shown.task.done(), BOUND, "the window closed")


def test_the_wizards_pair_with_a_friend_on_another_account(
        make_app: Any, run: Any, config_root: Path, real_keyring: object, xmpp_server: Any,
        wait: Any, qtbot: Any) -> None:  # fmt: skip
    for user in ("alice", "bob"):
        xmpp_server.register(user, "pw")
    a = _app(make_app, run, config_root, "a", "laptop", xmpp_server)
    b = _app(make_app, run, config_root, "b", "friend", xmpp_server, "bob@localhost")
    shown = _show_code(a, wait, friend="bob@localhost")
    dlg = b.open_join()
    qtbot.keyClicks(dlg.code, shown.code.text())
    dlg.join.click()
    wait(lambda: shown.said.text().startswith("Paired with"), BOUND, "the shower's outcome")
    wait(lambda: dlg.said.text() == "Paired with laptop (over XMPP).", BOUND, "the joiner's outcome")
    assert [(r.name, r.own) for r in _records(a)] == [("friend", False)]
    assert [(r.name, r.own) for r in _records(b)] == [("laptop", False)]
