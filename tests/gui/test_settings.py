"""The settings dialog over a real Core: start at login, XMPP account, network settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import keyring
from keyring.backends import fail
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialogButtonBox

from core.settings import load_settings
from gui import autostart


def _apply(dlg: Any) -> None:
    dlg.buttons.button(QDialogButtonBox.StandardButton.Apply).click()


def test_start_at_login_writes_and_removes_the_autostart_entry(
        make_app: Any, wait: Any, git_home: Path, config_root: Path) -> None:
    app = make_app("a", show=False)
    dlg = app.open_settings()
    entry = git_home / ".config" / "autostart" / "annexsync.desktop"
    assert autostart.entry_path() == entry and not entry.exists()
    dlg.start_at_login.setChecked(True)
    dlg.bandwidth.setValue(250)
    dlg.slots.setValue(3)
    _apply(dlg)
    wait(lambda: app.core.settings.start_at_login, 10)
    text = entry.read_text()
    assert "Exec=" in text and "X-GNOME-Autostart-enabled=true" in text and "@EXEC@" not in text
    saved = load_settings(config_root / "a")
    assert (saved.start_at_login, saved.bandwidth_limit, saved.transfer_slots) == (True, 250_000, 3)
    dlg.start_at_login.setChecked(False)
    dlg.bandwidth.setValue(0)
    _apply(dlg)
    wait(lambda: not app.core.settings.start_at_login, 10)
    assert not entry.exists() and load_settings(config_root / "a").bandwidth_limit is None


CLASS_NAME = re.compile(r"\b[A-Z][a-z]+[A-Z][A-Za-z]*\b|Error\b|Exception\b|Traceback")


def _sign_in(dlg: Any, jid: str, password: str, server: Any, ca: bool = True) -> None:
    dlg.jid.setText(jid)
    dlg.password.setText(password)
    dlg.xmpp_server.setText(server.server)
    dlg.xmpp_ca.setText(str(server.cert) if ca else "")
    dlg.use_account.click()


def _nothing_stored(config_dir: Path, jid: str, password: str) -> None:
    assert load_settings(config_dir).xmpp_account is None
    assert keyring.get_password("annexsync:xmpp", jid) is None
    for f in config_dir.rglob("*"):
        if f.is_file():
            assert password.encode() not in f.read_bytes(), f


def test_account_page_signs_in_for_real(make_app: Any, wait: Any, config_root: Path,
                                        real_keyring: object, xmpp_server: Any) -> None:
    alice = xmpp_server.register("alice", "alice-pw")
    bob = xmpp_server.register("bob", "bob-pw")
    app = make_app("a", show=False)
    d = config_root / "a"
    dlg = app.open_settings()
    wait(lambda: "Not signed in" in dlg.xmpp_state.text(), 10)
    for password, ca, words in (("wrong-pw", True, "refused the password"),
                                ("alice-pw", False, "certificate is not trusted")):  # fmt: skip
        _sign_in(dlg, alice, password, xmpp_server, ca)
        wait(lambda w=words: w in dlg.message.text(), 15)  # type: ignore[misc]
        assert not CLASS_NAME.search(dlg.message.text()), dlg.message.text()
        _nothing_stored(d, alice, password)
    _sign_in(dlg, "alice@localhost", "", xmpp_server)  # an empty password is not even tried
    assert "Enter the password" in dlg.message.text()

    _sign_in(dlg, alice, "alice-pw", xmpp_server)
    wait(lambda: "Signed in as alice@localhost" in dlg.xmpp_state.text(), 15)
    assert "password is in your keyring" in dlg.message.text()
    assert keyring.get_password("annexsync:xmpp", alice) == "alice-pw"
    assert dlg.password.text() == ""
    assert b"alice-pw" not in (d / "settings.json").read_bytes()

    _sign_in(dlg, bob, "bob-pw", xmpp_server)  # a new address: the old password goes
    wait(lambda: "Signed in as bob@localhost" in dlg.xmpp_state.text(), 15)
    assert keyring.get_password("annexsync:xmpp", alice) is None
    assert keyring.get_password("annexsync:xmpp", bob) == "bob-pw"

    dlg.forget_account.click()
    wait(lambda: "Not signed in" in dlg.xmpp_state.text(), 10)
    _nothing_stored(d, bob, "bob-pw")


def test_devices_view_and_tray_show_the_other_instance(make_app: Any, make_core: Any, run: Any,
                                                       wait: Any, real_keyring: object,
                                                       xmpp_server: Any) -> None:  # fmt: skip
    alice = xmpp_server.register("alice", "alice-pw")
    where = {"server": xmpp_server.server, "ca_file": str(xmpp_server.cert)}
    other = make_core("b")
    run(other.xmpp_login(alice, "alice-pw", **where))
    app = make_app("a", show=False)
    run(app.core.xmpp_login(alice, "alice-pw", **where))
    window = app.open_window()
    view = window.devices
    wait(lambda: any(t.endswith(": online") for t in view.device_texts()), 15)
    assert "Your devices (alice@localhost)" in [view.tree.topLevelItem(0).text(0)]
    app.tray.rebuild_menu()
    line = app.tray.menu.findChild(QAction, "action-devices").text()
    assert line.startswith("Online: "), line
    run(other.stop())
    wait(lambda: any(t.endswith(": offline") for t in view.device_texts()), 15)
    app.tray.rebuild_menu()
    assert app.tray.menu.findChild(QAction, "action-devices").text() == "No other device online"


def test_no_safe_keyring_stores_nothing_and_says_why(make_app: Any, wait: Any,
                                                     config_root: Path) -> None:
    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        app = make_app("a", show=False)
        dlg = app.open_settings()
        dlg.jid.setText("alice@example.org")
        dlg.password.setText("s3cret-pw")
        dlg.use_account.click()
        wait(lambda: "keyring" in dlg.message.text() or "Secret Service" in dlg.message.text(), 10)
        assert app.core.settings.xmpp_account is None
        assert "s3cret-pw" not in (config_root / "a" / "settings.json").read_text() \
            if (config_root / "a" / "settings.json").exists() else True
    finally:
        keyring.set_keyring(old)


def test_start_at_login_removed_by_the_person_is_never_recreated(
        make_app: Any, wait: Any, git_home: Path, config_root: Path) -> None:
    """Removed in the desktop's own settings (or by hand): it stays removed, on reopening the
    dialog and on applying other settings, even with the dialog open meanwhile (issue 21)."""
    app = make_app("a", show=False)
    dlg = app.open_settings()
    dlg.start_at_login.setChecked(True)
    _apply(dlg)
    wait(lambda: app.core.settings.start_at_login, 10)
    entry = autostart.entry_path()
    assert entry.is_file()
    entry.unlink()  # the person, elsewhere, while the dialog is open
    dlg.slots.setValue(4)
    _apply(dlg)
    wait(lambda: app.core.settings.transfer_slots == 4, 10)
    assert not entry.exists() and not dlg.start_at_login.isChecked()
    wait(lambda: not app.core.settings.start_at_login, 10)
    dlg.close()
    dlg = app.open_settings()
    assert not dlg.start_at_login.isChecked()
    dlg.bandwidth.setValue(100)
    _apply(dlg)
    wait(lambda: app.core.settings.bandwidth_limit == 100_000, 10)
    assert not entry.exists() and not load_settings(config_root / "a").start_at_login
