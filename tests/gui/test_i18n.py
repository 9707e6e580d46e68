"""Translations: the German one is complete and compiled, and the locale picks it at startup."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TS = ROOT / "resources" / "translations" / "annexsync_de.ts"
BIN = Path(sys.executable).parent


def _messages(ts: Path) -> dict[tuple[str, str], str | None]:
    out: dict[tuple[str, str], str | None] = {}
    for ctx in ET.parse(ts).getroot().iter("context"):
        name = ctx.findtext("name") or ""
        for m in ctx.iter("message"):
            tr = m.find("translation")
            assert tr is not None
            done = tr.get("type") not in ("unfinished", "obsolete", "vanished")
            out[(name, m.findtext("source") or "")] = tr.text if done else None
    return out


def test_german_covers_every_string_and_its_qm_is_current(tmp_path: Path) -> None:
    fresh = tmp_path / TS.name
    shutil.copy(TS, fresh)
    sources = sorted(str(p) for p in (ROOT / "gui").rglob("*.py"))
    subprocess.run([str(BIN / "pyside6-lupdate"), *sources, "-ts", str(fresh), "-no-obsolete"],
                   check=True, capture_output=True, timeout=60)
    now, shipped = _messages(fresh), _messages(TS)
    assert now.keys() == shipped.keys(), "run packaging/translations.sh and translate the new strings"
    untranslated = [k for k, v in now.items() if not v]
    assert not untranslated, untranslated
    qm = tmp_path / "de.qm"
    subprocess.run([str(BIN / "pyside6-lrelease"), str(TS), "-qm", str(qm)],
                   check=True, capture_output=True, timeout=60)
    assert qm.read_bytes() == TS.with_suffix(".qm").read_bytes(), "run packaging/translations.sh"


PROBE = """
from PySide6.QtCore import QCoreApplication, QObject
from gui import i18n
app = QCoreApplication([])
i18n.install(app)
class Tray(QObject):
    pass
print(Tray().tr("Open window"), QCoreApplication.translate("Tray", "Paused"),
      QCoreApplication.translate("Elsewhere", "Not ours"), sep="|")
"""


def _probe(lang: str) -> str:
    env = {**os.environ, "LANG": lang, "LC_ALL": lang, "LANGUAGE": "", "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True, timeout=30).stdout.strip()


def test_the_locale_picks_the_translation_at_startup() -> None:
    # "Paused" comes from a helper handed the tray's tr: filed under the empty context
    # and a string no translation has stays itself (not blank)
    assert _probe("de_DE.UTF-8") == "Fenster öffnen|Angehalten|Not ours"
    assert _probe("en_US.UTF-8") == "Open window|Paused|Not ours"
    assert _probe("fr_FR.UTF-8") == "Open window|Paused|Not ours"  # no French yet: English, not German
