"""Translations: the person's language, loaded once before any window exists.

``resources/translations/annexsync_<lang>.qm`` is compiled (``pyside6-lrelease``)
from the ``.ts`` file translators edit; ``packaging/translations.sh`` updates
the ``.ts`` from the sources (``pyside6-lupdate``) and compiles it.  Qt's own
strings (standard buttons, file dialogs) come from Qt's ``qtbase_<lang>.qm``.

Strings reach Qt through ``self.tr`` (context: the class) or through a helper
function handed a ``tr`` (``gui/tray.py``'s lines, shared by the tray and the
window).  lupdate cannot see whose ``tr`` a helper gets and files those strings
under the empty context, so the translator looks there when the class has no
entry: each string is translated once, wherever it is shown.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

from gui.icons import RESOURCES

logger = logging.getLogger(__name__)
TRANSLATIONS = RESOURCES / "translations"


class FallbackTranslator(QTranslator):
    """A translator that also looks under the empty context (see the module docstring)."""

    def translate(self, context: str, source: str, disambiguation: str | None = None,
                  n: int = -1) -> str | None:
        text = super().translate(context, source, disambiguation, n)
        if not text and context:
            text = super().translate("", source, disambiguation, n)
        # None, not "": Qt takes an empty string for a translation (blank buttons)
        return text or None


def install(app: QCoreApplication, locale: QLocale | None = None) -> list[QTranslator]:
    """Install annexsync's and Qt's translations for ``locale`` (default: the system's).

    English needs none; a language without a translation stays English.
    """
    loc = locale or QLocale()
    installed: list[QTranslator] = []
    ours = FallbackTranslator(app)
    if ours.load(loc, "annexsync", "_", str(TRANSLATIONS)):
        installed.append(ours)
    qt = QTranslator(app)
    if qt.load(loc, "qtbase", "_", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)):
        installed.append(qt)
    for t in installed:
        app.installTranslator(t)
    if installed:
        logger.info("translations for %s: %s", loc.name(), [t.filePath() for t in installed])
    return installed
