"""Human-readable sizes, speeds and times for the views, every string translated."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QCoreApplication, QDateTime, QLocale

CTX = "format"


def _tr(text: str, n: int = -1) -> str:
    return QCoreApplication.translate(CTX, text, None, n)


def size(nbytes: int | float | None) -> str:
    """``1.5 MB`` style sizes in the user's locale; ``?`` when unknown."""
    if nbytes is None:
        return _tr("?")
    return QLocale().formattedDataSize(int(nbytes), 1, QLocale.DataSizeFormat.DataSizeSIFormat)


def speed(bytes_per_s: float) -> str:
    """A transfer speed, empty when nothing moves."""
    if bytes_per_s <= 0:
        return ""
    return _tr("%1/s").replace("%1", size(bytes_per_s))


def duration(seconds: float) -> str:
    """A short duration: ``12 s``, ``3 min``, ``2 h``, ``4 days``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return _tr("%n s", s)
    if s < 3600:
        return _tr("%n min", s // 60)
    if s < 86400:
        return _tr("%n h", s // 3600)
    return _tr("%n days", s // 86400)


def ago(when: float | None, now: float) -> str:
    """``just now``, ``5 min ago``, or ``never``."""
    if when is None:
        return _tr("never")
    if now - when < 5:
        return _tr("just now")
    return _tr("%1 ago").replace("%1", duration(now - when))


def clock(when: float, now: float | None = None) -> str:
    """A wall-clock time; the date too when it is not today."""
    if math.isinf(when):
        return _tr("you resume")
    dt = QDateTime.fromSecsSinceEpoch(int(when))
    today = QDateTime.fromSecsSinceEpoch(int(now if now is not None else time.time())).date()
    fmt = QLocale.FormatType.ShortFormat
    if dt.date() == today:
        return QLocale().toString(dt.time(), fmt)
    return QLocale().toString(dt, fmt)


def tomorrow_morning(now: float, hour: int = 8) -> float:
    """Epoch seconds of ``hour``:00 local time tomorrow (for "pause until tomorrow")."""
    lt = time.localtime(now)
    t = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday + 1, hour, 0, 0, 0, 0, -1))
    return float(t)
