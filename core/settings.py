"""Settings of one annexsync instance, and where its files live.

Theory of operation
-------------------
An instance is identified by its *config directory*: ``--config-dir``, else
``ANNEXSYNC_CONFIG_DIR``, else ``platformdirs.user_config_dir("annexsync")``
(``resolve_config_dir``).  Two config directories are two independent
instances (tests run two on one machine).  The directory holds:

* ``settings.json``  -- ``Settings`` (written atomically: temp file + rename);
* ``annexsync.log``  -- the rotating log (``setup_logging``);
* ``instance.lock`` / ``instance.sock`` -- ``core.instance``;
* ``conflicts.json`` -- conflicts the user acknowledged (``core.api``).

Secrets never go here: the XMPP password lives in the OS keyring
(``core.secrets``); ``Settings`` holds the JID only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import logging.handlers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from core.errors import CoreError

logger = logging.getLogger(__name__)

APP_NAME = "annexsync"
ENV_CONFIG_DIR = "ANNEXSYNC_CONFIG_DIR"
SETTINGS_FILE = "settings.json"
LOG_FILE = "annexsync.log"
LOG_MAX_BYTES = 2 << 20  # as the assistant rotates daemon.log past 2 MB (spec 2)
LOG_BACKUPS = 3


class SettingsError(CoreError):
    """The settings file exists but cannot be read or written."""


@dataclass(frozen=True)
class Settings:
    repositories: tuple[str, ...] = ()
    transfer_slots: int = 2
    bandwidth_limit: int | None = None  # bytes/s, None = unlimited
    start_at_login: bool = False
    largefiles: str | None = None  # default annex.largefiles for repositories we create
    xmpp_account: str | None = None  # the JID only; the password lives in the keyring
    xmpp_server: str | None = None  # HOST[:PORT] when not found from the JID's domain
    xmpp_ca_file: str | None = None  # a CA file for a self-hosted server's certificate
    paused: bool = False  # remembered across restarts (indefinite pauses only)
    p2p_listen: str | None = None  # HOST:PORT: serve every synced repository to P2P peers
    pairing_interface: str | None = None  # the address pairing listens and announces on (all)

    def __post_init__(self) -> None:
        # Accept a list (the facade says "list of paths") but keep the value frozen.
        object.__setattr__(self, "repositories", tuple(str(p) for p in self.repositories))
        if self.transfer_slots < 1:
            raise ValueError("transfer_slots must be at least 1")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def resolve_config_dir(given: Path | str | None = None) -> Path:
    """--config-dir, else $ANNEXSYNC_CONFIG_DIR, else the platform's user config dir."""
    if given:
        return Path(given).expanduser().absolute()
    env = os.environ.get(ENV_CONFIG_DIR)
    if env:
        return Path(env).expanduser().absolute()
    return Path(platformdirs.user_config_dir(APP_NAME))


def load_settings(config_dir: Path) -> Settings:
    """The saved settings, or the defaults when none were saved.

    Raises:
        SettingsError: the file exists but is not valid settings JSON.
    """
    path = Path(config_dir) / SETTINGS_FILE
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    except OSError as e:
        raise SettingsError(f"cannot read {path}: {e}") from e
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in dataclasses.fields(Settings)}
        unknown = sorted(set(data) - known)
        if unknown:
            logger.warning("%s: ignoring unknown settings %s", path, ", ".join(unknown))
        return Settings(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError) as e:
        raise SettingsError(f"{path} is not valid settings: {e}") from e


def save_settings(config_dir: Path, settings: Settings) -> None:
    """Write ``settings.json`` atomically.

    Raises:
        SettingsError: the directory or file cannot be written.
    """
    d = Path(config_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / (SETTINGS_FILE + ".tmp")
        data = dataclasses.asdict(settings)
        data["repositories"] = list(settings.repositories)
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, d / SETTINGS_FILE)
    except OSError as e:
        raise SettingsError(f"cannot write settings in {d}: {e}") from e


def setup_logging(config_dir: Path, level: int = logging.INFO) -> logging.Handler:
    """Attach a rotating log file in ``config_dir`` to the ``core`` logger.

    Returns the handler so the caller can remove it (``close_logging``).
    """
    Path(config_dir).mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        Path(config_dir) / LOG_FILE, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS,
        encoding="utf-8",
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    root = logging.getLogger("core")
    root.addHandler(handler)
    if root.getEffectiveLevel() > level:
        root.setLevel(level)  # only ever lowered, so a caller's DEBUG stays
    return handler


def close_logging(handler: logging.Handler) -> None:
    logging.getLogger("core").removeHandler(handler)
    handler.close()


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)]

