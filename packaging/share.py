"""Lay out ``share/`` for the bundle and the .deb: menu entry, icons, AppStream, man pages.

    QT_QPA_PLATFORM=offscreen python packaging/share.py SHARE_DIR VERSION

Everything is made from the sources in ``resources/`` and the command line's own
parser, so nothing here is kept twice:
- ``applications/<id>.desktop``: the menu entry, named by the AppStream id
  (``resources/annexsync.metainfo.xml``, the one place it is written);
- ``icons/hicolor/``: the scalable SVG, PNGs in the sizes of the freedesktop
  icon theme spec (rendered here with Qt's SVG renderer), and the one-colour
  ``-symbolic`` icon that panels recolour for light and dark themes;
- ``metainfo/annexsync.metainfo.xml`` with this version and release date;
- ``man/man1``: annexsync.1 from ``core.cli.full_parser`` (argparse-manpage),
  the helpers' pages from ``packaging/man``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RES = ROOT / "resources"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def render_pngs(svg: Path, icons: Path) -> None:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {svg}")
    for size in PNG_SIZES:
        img = QImage(size, size, QImage.Format.Format_ARGB32)
        img.fill(Qt.GlobalColor.transparent)
        painter = QPainter(img)
        renderer.render(painter)
        painter.end()
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        img.save(buf, "PNG")
        out = icons / f"{size}x{size}" / "apps" / "annexsync.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(bytes(data.data()))
    del _app


def man_pages(man1: Path, version: str, date: str) -> None:
    man1.mkdir(parents=True, exist_ok=True)
    page = man1 / "annexsync.1"
    subprocess.run(
        [str(Path(sys.executable).parent / "argparse-manpage"), "--module", "core.cli",
         "--function", "full_parser", "--prog", "annexsync", "--project-name", "annexsync",
         "--version", version, "--manual-title", "annexsync manual", "--author",
         "the annexsync developers", "--output", str(page)],
        check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    for src in sorted((ROOT / "packaging" / "man").glob("*.1")):
        text = src.read_text(encoding="utf-8").replace("@VERSION@", version).replace("@DATE@", date)
        (man1 / src.name).write_text(text, encoding="utf-8")
    for p in sorted(man1.glob("*.1")):
        with p.open("rb") as f, gzip.GzipFile(p.with_suffix(".1.gz"), "wb", 9, mtime=0) as z:
            shutil.copyfileobj(f, z)
        p.unlink()


def app_id() -> str:
    """The AppStream component id, which also names the desktop entry."""
    found = ET.parse(RES / "annexsync.metainfo.xml").getroot().findtext("id")
    assert found, "resources/annexsync.metainfo.xml has no <id>"
    return found


def main() -> int:
    share, version = Path(sys.argv[1]), sys.argv[2]
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    date = time.strftime("%Y-%m-%d", time.gmtime(epoch))
    apps = share / "applications"
    apps.mkdir(parents=True, exist_ok=True)
    shutil.copy(RES / "annexsync.desktop", apps / f"{app_id()}.desktop")
    icons = share / "icons" / "hicolor"
    for sub, src in (("scalable", "annexsync.svg"), ("symbolic", "annexsync-symbolic.svg")):
        (icons / sub / "apps").mkdir(parents=True, exist_ok=True)
        shutil.copy(RES / src, icons / sub / "apps" / src)
    render_pngs(RES / "annexsync.svg", icons)
    meta = share / "metainfo"
    meta.mkdir(parents=True, exist_ok=True)
    text = (RES / "annexsync.metainfo.xml").read_text(encoding="utf-8")
    (meta / "annexsync.metainfo.xml").write_text(
        text.replace("@VERSION@", version).replace("@DATE@", date), encoding="utf-8")
    man_pages(share / "man" / "man1", version, date)
    doc = share / "doc" / "annexsync"
    doc.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "README.md", doc / "README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
