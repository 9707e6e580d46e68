"""The settings dialog over a real Core: start at login, XMPP account, network settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keyring
from keyring.backends import fail
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


def test_xmpp_password_goes_to_the_keyring_not_the_settings(
        make_app: Any, wait: Any, config_root: Path, real_keyring: object) -> None:
    app = make_app("a", show=False)
    dlg = app.open_settings()
    dlg.jid.setText("alice@example.org")
    dlg.password.setText("s3cret-pw")
    dlg.use_account.click()
    wait(lambda: app.core.settings.xmpp_account == "alice@example.org", 10)
    assert keyring.get_password("annexsync:xmpp", "alice@example.org") == "s3cret-pw"
    assert "s3cret-pw" not in (config_root / "a" / "settings.json").read_text()
    assert dlg.password.text() == ""
    dlg.forget_account.click()
    wait(lambda: app.core.settings.xmpp_account is None, 10)
    assert keyring.get_password("annexsync:xmpp", "alice@example.org") is None


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
