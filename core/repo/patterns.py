"""Globs and sizes of preferred-content and annex.largefiles expressions.

Spec: repository-format.md 10.3.  Pure: no I/O.  Split from ``preferred`` so
that module keeps to the expression language; ``preferred`` re-exports both
functions.
"""

from __future__ import annotations

import math
import re

from core.errors import ExpressionError

__all__ = ["compile_glob", "parse_size"]


# --- sizes (10.3) -------------------------------------------------------------

_SIZE_NUMBER = re.compile(
    r"-?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
)
_DECIMAL = ("kilo", "mega", "giga", "tera", "peta", "exa", "zetta", "yotta", "ronna", "quetta")
_BINARY = ("kibi", "mebi", "gibi", "tebi", "pebi", "exbi", "zebi", "yobi")


def _unit_table() -> dict[str, int]:
    units = {"": 1, "b": 1, "byte": 1, "bytes": 1}
    for power, name in enumerate(_DECIMAL, 1):
        for form in (name[0], name[0] + "b", name + "byte", name + "bytes"):
            units[form] = 1000**power
    for power, name in enumerate(_BINARY, 1):
        for form in (name[0] + "i", name[0] + "ib", name + "byte", name + "bytes"):
            units[form] = 1024**power
    return units


_UNITS = _unit_table()


def _number(text: str) -> float:
    if text.lstrip("-")[:2].lower() in ("0x", "0o"):
        sign = -1 if text.startswith("-") else 1
        return float(sign * int(text.lstrip("-"), 0))
    return float(text)


def parse_size(text: str) -> int:
    """A size in bytes: number (fraction, exponent, 0x/0o allowed), then a unit (10.3).

    Units are case-insensitive; ``kB``/``k``/``kilobytes`` are powers of 1000 and
    ``KiB``/``Ki``/``kibibytes`` powers of 1024.  Like git-annex, the value is
    computed in floating point and rounded half to even, a minus sign is
    accepted, and anything after the unit that is not a letter is ignored
    (``1mb1`` is one megabyte).  Used for annex.diskreserve too.

    Raises:
        ExpressionError: no number, an unknown unit, or no finite value.
    """
    m = _SIZE_NUMBER.match(text)
    if not m:
        raise ExpressionError(text, "bad size: no number")
    unit = re.match(r"[A-Za-z]*", text[m.end():])
    letters = unit.group(0).lower() if unit else ""
    if letters not in _UNITS:
        raise ExpressionError(text, f"bad size: unknown unit {letters!r}")
    try:
        value = _number(m.group(0)) * _UNITS[letters]
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise ExpressionError(text, "bad size: too large")
    return round(value)


# --- globs (10.3) -------------------------------------------------------------

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~",
    "punct": "!-/:-@\\[-`{-~", "space": " \\t\\n\\r\\f\\v", "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}


def compile_glob(glob: str, *, filepath: bool = True,
                 ignore_case: bool = False) -> re.Pattern[str] | None:
    """The regex matching whole paths like ``glob``; None if git-annex could not compile it.

    ``*`` and ``?`` match ``/`` too, a ``/`` matches one or more ``/`` (only
    for a file path glob: metadata globs take it literally), a backslash is
    an ordinary character, ``[...]``/``[!...]``/``[^...]`` hold characters,
    ranges and ASCII POSIX classes.
    """
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "[":
            cls, i = _glob_class(glob, i + 1)
            if cls is None:
                return None
            out.append(cls)
            continue
        out.append({"*": ".*", "?": ".", "/": "/+" if filepath else "/"}.get(c) or re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _glob_class(glob: str, i: int) -> tuple[str | None, int]:
    """Translate the class starting after ``[``; returns (regex or None, next index)."""
    negate = i < len(glob) and glob[i] in "!^"
    i += negate
    items: list[str] = []
    first = True
    while i < len(glob) and (first or glob[i] != "]"):
        first = False
        posix = re.match(r"\[:([a-z]*):\]", glob[i:])
        if posix:
            items.append(_POSIX_CLASSES.get(posix.group(1), ""))
            i += posix.end()
        elif i + 2 < len(glob) and glob[i + 1] == "-" and glob[i + 2] != "]":
            if glob[i] > glob[i + 2]:
                return None, i
            items.append(re.escape(glob[i]) + "-" + re.escape(glob[i + 2]))
            i += 3
        else:
            items.append(re.escape(glob[i]))
            i += 1
    if i >= len(glob):
        return None, i
    body = "".join(items)
    if not body:
        return ("." if negate else "(?!)"), i + 1
    return ("[^" if negate else "[") + body + "]", i + 1
