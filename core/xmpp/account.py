"""The XMPP account of an instance: log in (checked first), log out, load.

Spec: xmpp-sync.md B.55 (no plain-file password), C.6; the issue's rules:
the JID (and an optional server and CA file) go to the settings, the password
only to the OS keyring (``core.secrets``, service ``xmpp``, name = the JID),
and only after a real login with it succeeded -- so a wrong password, an
untrusted certificate or an unreachable server stores nothing.  A new address
removes the old address's password.

Blocking (keyring, settings file): ``login``/``logout`` are async and run
those parts in threads.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from core import secrets
from core.settings import Settings, load_settings, save_settings
from core.xmpp.client import XmppConfig, check_login

logger = logging.getLogger(__name__)

PASSWORD_SERVICE = "xmpp"
CHECK_RESOURCE = "annexsync-login"


def load_config(settings: Settings) -> XmppConfig | None:
    """The account to use, or None when none is set up (blocking: keyring).

    Raises:
        SecretsUnavailable: no safe keyring, or it cannot be read.
    """
    if not settings.xmpp_account:
        return None
    password = secrets.get(PASSWORD_SERVICE, settings.xmpp_account)
    if not password:
        return None
    return XmppConfig(settings.xmpp_account, password, settings.xmpp_server,
                      settings.xmpp_ca_file)  # fmt: skip


async def login(config_dir: Path, cfg: XmppConfig) -> Settings:
    """Check the login, then store the password and the settings; the new settings.

    Raises:
        XmppError: the login failed (nothing stored).
        SecretsUnavailable: no safe keyring (nothing stored).
        SettingsError: the settings could not be written (the password was removed again).
    """
    cfg.check()
    await asyncio.to_thread(secrets.backend)  # refuse before connecting when nothing can keep it
    await check_login(cfg, CHECK_RESOURCE)
    return await asyncio.to_thread(_store, Path(config_dir), cfg)


def _store(config_dir: Path, cfg: XmppConfig) -> Settings:
    old = load_settings(config_dir)
    secrets.store(PASSWORD_SERVICE, cfg.jid, cfg.password)
    new = old.replace(xmpp_account=cfg.jid, xmpp_server=cfg.server, xmpp_ca_file=cfg.ca_file)
    try:
        save_settings(config_dir, new)
    except Exception:
        if old.xmpp_account != cfg.jid:
            secrets.delete(PASSWORD_SERVICE, cfg.jid)
        raise
    if old.xmpp_account and old.xmpp_account != cfg.jid:
        secrets.delete(PASSWORD_SERVICE, old.xmpp_account)
    return new


async def logout(config_dir: Path) -> Settings:
    """Remove the password and the account from the settings; the new settings."""
    return await asyncio.to_thread(_forget, Path(config_dir))


def _forget(config_dir: Path) -> Settings:
    old = load_settings(config_dir)
    if old.xmpp_account:
        secrets.delete(PASSWORD_SERVICE, old.xmpp_account)
    new = old.replace(xmpp_account=None, xmpp_server=None, xmpp_ca_file=None)
    save_settings(config_dir, new)
    return new
