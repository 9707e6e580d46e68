"""The menu entry, autostart entry and AppStream metadata as shipped pass the freedesktop validators."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RES = ROOT / "resources"


def test_desktop_entries_validate() -> None:
    for name in ("annexsync.desktop", "annexsync-autostart.desktop"):
        out = subprocess.run(["desktop-file-validate", str(RES / name)], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0 and "error" not in out.stdout.lower(), out.stdout


def test_metainfo_validates_and_names_the_desktop_entry(tmp_path: Path) -> None:
    from gui.app import DESKTOP_ID

    text = (RES / "annexsync.metainfo.xml").read_text()
    filled = tmp_path / f"{DESKTOP_ID}.metainfo.xml"
    filled.write_text(text.replace("@VERSION@", "1.0").replace("@DATE@", "2026-01-01"))
    out = subprocess.run(["appstreamcli", "validate", "--no-net", str(filled)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    root = ET.parse(filled).getroot()
    assert root.findtext("id") == DESKTOP_ID
    assert root.findtext("launchable") == f"{DESKTOP_ID}.desktop"
