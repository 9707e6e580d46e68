"""Start at login: an XDG autostart entry in ``$XDG_CONFIG_HOME/autostart``.

The entry is written from ``resources/annexsync-autostart.desktop`` with the
command that starts this installation (the ``annexsync`` script on PATH, else
this interpreter running ``core.cli``), so a venv install starts itself.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from gui.icons import RESOURCES

FILE_NAME = "annexsync.desktop"
TEMPLATE = RESOURCES / "annexsync-autostart.desktop"
_FALLBACK_TEMPLATE = """[Desktop Entry]
Type=Application
Name=annexsync
Exec=@EXEC@
Icon=annexsync
Terminal=false
NoDisplay=true
X-GNOME-Autostart-enabled=true
"""


def autostart_dir() -> Path:
    """``$XDG_CONFIG_HOME/autostart`` (``~/.config/autostart`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autostart"


def entry_path() -> Path:
    """The autostart file this app writes."""
    return autostart_dir() / FILE_NAME


def exec_command(config_dir: Path | None = None) -> str:
    """The ``Exec=`` line: how to start this installation."""
    script = shutil.which("annexsync")
    if getattr(sys, "frozen", False):  # the bundle (PyInstaller): its own binary
        argv = [sys.executable]
    else:
        argv = [script] if script else [sys.executable, "-m", "core.cli"]
    if config_dir is not None:
        argv += ["--config-dir", str(config_dir)]
    return " ".join(shlex.quote(a) for a in argv)


def is_enabled() -> bool:
    """Whether an autostart entry exists."""
    return entry_path().is_file()


def enable(config_dir: Path | None = None) -> Path:
    """Write the autostart entry; returns its path.

    Raises:
        OSError: the directory or file cannot be written.
    """
    template = TEMPLATE.read_text(encoding="utf-8") if TEMPLATE.is_file() else _FALLBACK_TEMPLATE
    path = entry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(template.replace("@EXEC@", exec_command(config_dir)), encoding="utf-8")
    os.replace(tmp, path)
    return path


def disable() -> None:
    """Remove the autostart entry (absent is fine)."""
    entry_path().unlink(missing_ok=True)


def apply(enabled: bool, config_dir: Path | None = None) -> None:
    """Make the autostart entry match ``enabled``."""
    if enabled:
        enable(config_dir)
    else:
        disable()
