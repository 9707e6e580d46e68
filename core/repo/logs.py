"""Line formats of the git-annex branch logs: parse, compact, format, merge.

Spec: repository-format.md 5.1-5.5 (families, clocks, tie rules), 7.2 (union
merge), 7.3 (compaction).  Pure: bytes in, values out; no files, no clock.

Theory of operation
-------------------
Every branch file is a set of lines, each a timestamped fact about a
*subject* (a UUID, a URL, a setting name...).  A reader keeps the newest line
per subject; a writer adds its line and re-emits the file *compacted*: one
line per subject, sorted by subject in byte order, timestamps in canonical
form (5.2, 7.3).  Two copies of a file merge by the union of their lines
(7.2); the newest-wins rule of the reader resolves the result.

Rules kept here:

- Clocks are exact ``Fraction`` seconds; ``None`` is "unknown" (an old
  uuid-based line without ``timestamp=``), older than any clock (5.2).
- Lines end at ``\\n`` or ``\\r`` in any mix; empty lines are ignored (5.1).
- Ties on the same clock: presence logs keep the *first* line, uuid-based
  and map logs the *last*, single-value logs the greater value (5.2).
- Readers skip lines they cannot parse.  The ``strict=True`` variant raises
  ``LogLineError`` naming the file and the 1-based line (counted at ``\\n``).
  Line parsers raise only ``ValueError``, so any bytes give lines or a skip.
- A new clock is ``now``, or the subject's previous clock + 1 s when that is
  >= now (``next_clock``, 5.2).
"""

from __future__ import annotations

import base64
import datetime
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

from core.errors import LogLineError

logger = logging.getLogger(__name__)

Clock = Fraction | None
T = TypeVar("T")

PRESENT = b"1"
ABSENT = b"0"
DEAD = b"X"
_STATUSES = frozenset({PRESENT, ABSENT, DEAD})
_PICO = 10**12  # git-annex keeps clocks to the picosecond (5.2: at most 12 digits)


# --- clocks (5.2) -------------------------------------------------------------


def parse_clock(text: bytes) -> Fraction:
    """``1795288828s``, ``1317929189.157237s`` or ``1287290770`` -> Fraction.

    Digits beyond the 12th decimal are truncated.

    Raises:
        ValueError: not a clock.
    """
    body = text[:-1] if text.endswith(b"s") else text
    neg = body.startswith(b"-")
    whole, dot, frac = (body[1:] if neg else body).partition(b".")
    if not _digits(whole) or (dot and not _digits(frac)):
        raise ValueError(f"bad timestamp {text[:40]!r}")
    value = Fraction(int(whole))
    if frac:
        frac = frac[:12]
        value += Fraction(int(frac), 10 ** len(frac))
    return -value if neg else value


def _digits(text: bytes) -> bool:
    return bool(text) and text.isdigit()  # bytes.isdigit is ASCII-only


def format_clock(value: Fraction) -> bytes:
    """Canonical form: whole seconds, then ``.`` + up to 12 digits if any, then ``s``."""
    sign = b"-" if value < 0 else b""
    value = abs(value)
    whole = value.numerator // value.denominator
    pico = int((value - whole) * _PICO)
    if pico == 0:
        return sign + b"%ds" % whole
    return sign + b"%d.%s" % (whole, f"{pico:012d}".rstrip("0").encode()) + b"s"


def next_clock(now: Fraction | int, previous: Clock) -> Fraction:
    """The clock for a new line: ``now``, or previous + 1 if previous >= now (5.2)."""
    now = Fraction(now)
    if previous is not None and previous >= now:
        return previous + 1
    return now


def _newer(new: Clock, old: Clock, tie_to_new: bool) -> bool:
    if new is None or old is None:
        return old is None and (new is not None or tie_to_new)
    return new > old or (tie_to_new and new == old)


# --- line splitting -----------------------------------------------------------


def iter_lines(blob: bytes) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) for every non-empty line; ``\\r`` also ends lines."""
    for lineno, raw in enumerate(blob.split(b"\n"), 1):
        for line in raw.split(b"\r"):
            if line:
                yield lineno, line


def _parse_all(
    blob: bytes, parse_line: Callable[[bytes], T], file: str, strict: bool
) -> list[T]:
    out: list[T] = []
    for lineno, line in iter_lines(blob):
        try:
            out.append(parse_line(line))
        except ValueError as e:
            if strict:
                raise LogLineError(file, lineno, line, str(e)) from None
            # git-annex skips such lines too; say which one, keep the rest (5.1)
            logger.warning("%s", LogLineError(file or "log", lineno, line, f"skipped: {e}"))
    return out


def _check_value(value: bytes, what: str) -> None:
    if b"\n" in value or b"\r" in value:
        raise ValueError(f"line break in {what}")


# --- presence logs: T STATUS INFO ---------------------------------------------


@dataclass(frozen=True, slots=True)
class PresenceLine:
    clock: Fraction
    status: bytes  # PRESENT, ABSENT or DEAD
    info: bytes  # a UUID, a URL, a key

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"bad status {self.status!r}")
        _check_value(self.info, "info")

    @property
    def present(self) -> bool:
        return self.status == PRESENT


def parse_presence_line(line: bytes) -> PresenceLine:
    parts = line.split(b" ", 2)
    if len(parts) != 3:
        raise ValueError("not 'T STATUS INFO'")
    if parts[1] not in _STATUSES:
        raise ValueError("status is not 0, 1 or X")
    return PresenceLine(parse_clock(parts[0]), parts[1], parts[2])


def parse_presence(blob: bytes, file: str = "", strict: bool = False) -> list[PresenceLine]:
    return _parse_all(blob, parse_presence_line, file, strict)


def compact_presence(lines: Iterable[PresenceLine]) -> dict[bytes, PresenceLine]:
    """info -> newest line; on a tie the first line wins."""
    kept: dict[bytes, PresenceLine] = {}
    for line in lines:
        old = kept.get(line.info)
        if old is None or line.clock > old.clock:
            kept[line.info] = line
    return kept


def format_presence(lines: Iterable[PresenceLine]) -> bytes:
    ordered = sorted(lines, key=lambda x: x.info)
    return b"".join(b"%s %s %s\n" % (format_clock(x.clock), x.status, x.info) for x in ordered)


def change_presence(
    blob: bytes | None, info: bytes, status: bytes, now: Fraction | int
) -> bytes | None:
    """The compacted log with ``info`` set to ``status``; None when it already is (5.5)."""
    kept = compact_presence(parse_presence(blob or b""))
    old = kept.get(info)
    if old is not None and old.status == status:
        return None
    kept[info] = PresenceLine(next_clock(now, old.clock if old else None), status, info)
    return format_presence(kept.values())


# --- old uuid-based logs: UUID VALUE timestamp=T ------------------------------


@dataclass(frozen=True, slots=True)
class UuidLine:
    uuid: bytes
    value: bytes
    clock: Clock  # None: no timestamp, older than any

    def __post_init__(self) -> None:
        if not self.uuid or b" " in self.uuid:
            raise ValueError("bad uuid field")
        _check_value(self.value, "value")


_TS = b" timestamp="


def parse_uuid_line(line: bytes) -> UuidLine:
    uuid, _, rest = line.partition(b" ")
    head, sep, stamp = rest.rpartition(_TS)
    if not sep and rest.startswith(_TS[1:]):  # empty value, single space
        head, sep, stamp = b"", _TS, rest[len(_TS) - 1 :]
    if sep:
        try:
            return UuidLine(uuid, head, parse_clock(stamp))
        except ValueError:
            pass  # not a timestamp after all: part of the value
    return UuidLine(uuid, rest, None)


def parse_uuid_log(blob: bytes, file: str = "", strict: bool = False) -> list[UuidLine]:
    return _parse_all(blob, parse_uuid_line, file, strict)


def compact_uuid_log(lines: Iterable[UuidLine]) -> dict[bytes, UuidLine]:
    """uuid -> newest line; on a tie the last line wins."""
    return _compact_last(lines, lambda x: x.uuid)


def format_uuid_log(lines: Iterable[UuidLine]) -> bytes:
    out = []
    for x in sorted(lines, key=lambda x: x.uuid):
        stamp = b" timestamp=" + format_clock(x.clock) if x.clock is not None else b""
        out.append(b"%s %s%s\n" % (x.uuid, x.value, stamp))
    return b"".join(out)


def change_uuid_log(blob: bytes | None, uuid: bytes, value: bytes, now: Fraction | int) -> bytes:
    kept = compact_uuid_log(parse_uuid_log(blob or b""))
    old = kept.get(uuid)
    kept[uuid] = UuidLine(uuid, value, next_clock(now, old.clock if old else None))
    return format_uuid_log(kept.values())


# --- new uuid-based logs (T UUID VALUE) and map logs (T FIELD VALUE) ----------


@dataclass(frozen=True, slots=True)
class FieldLine:
    """A line ``T FIELD VALUE``: FIELD is a UUID (new uuid-based) or a name (map)."""

    clock: Fraction
    field: bytes
    value: bytes

    def __post_init__(self) -> None:
        if not self.field or b" " in self.field:
            raise ValueError("bad field")
        _check_value(self.field + self.value, "line")


def parse_field_line(line: bytes) -> FieldLine:
    parts = line.split(b" ", 2)
    if len(parts) != 3:
        raise ValueError("not 'T FIELD VALUE'")
    return FieldLine(parse_clock(parts[0]), parts[1], parts[2])


def parse_field_log(blob: bytes, file: str = "", strict: bool = False) -> list[FieldLine]:
    return _parse_all(blob, parse_field_line, file, strict)


def compact_field_log(lines: Iterable[FieldLine]) -> dict[bytes, FieldLine]:
    """field -> newest line; on a tie the last line wins."""
    return _compact_last(lines, lambda x: x.field)


def format_field_log(lines: Iterable[FieldLine]) -> bytes:
    ordered = sorted(lines, key=lambda x: x.field)
    return b"".join(b"%s %s %s\n" % (format_clock(x.clock), x.field, x.value) for x in ordered)


def change_field_log(blob: bytes | None, field: bytes, value: bytes, now: Fraction | int) -> bytes:
    kept = compact_field_log(parse_field_log(blob or b""))
    old = kept.get(field)
    kept[field] = FieldLine(next_clock(now, old.clock if old else None), field, value)
    return format_field_log(kept.values())


_K = TypeVar("_K", UuidLine, FieldLine)


def _compact_last(lines: Iterable[_K], subject: Callable[[_K], bytes]) -> dict[bytes, _K]:
    kept: dict[bytes, _K] = {}
    for line in lines:
        old = kept.get(subject(line))
        if old is None or _newer(line.clock, old.clock, tie_to_new=True):
            kept[subject(line)] = line
    return kept


# --- single-value logs: T VALUE -----------------------------------------------


@dataclass(frozen=True, slots=True)
class ValueLine:
    clock: Fraction
    value: bytes

    def __post_init__(self) -> None:
        _check_value(self.value, "value")


def parse_value_line(line: bytes) -> ValueLine:
    stamp, sep, value = line.partition(b" ")
    if not sep:
        raise ValueError("not 'T VALUE'")
    return ValueLine(parse_clock(stamp), value)


def parse_value_log(blob: bytes, file: str = "", strict: bool = False) -> list[ValueLine]:
    return _parse_all(blob, parse_value_line, file, strict)


def newest_value(
    lines: Iterable[ValueLine], order: Callable[[bytes], Any] = lambda v: v
) -> ValueLine | None:
    """The newest line; on a tie the greater value by ``order`` wins (5.2)."""
    best: ValueLine | None = None
    for line in lines:
        if best is None or (line.clock, order(line.value)) > (best.clock, order(best.value)):
            best = line
    return best


def format_value_log(line: ValueLine) -> bytes:
    return b"%s %s\n" % (format_clock(line.clock), line.value)


def change_value_log(blob: bytes | None, value: bytes, now: Fraction | int) -> bytes:
    """Writers replace the whole file with one line (5.4)."""
    old = newest_value(parse_value_log(blob or b""))
    return format_value_log(ValueLine(next_clock(now, old.clock if old else None), value))


# --- value encodings: remote.log, uuid.log, group.log -------------------------

_ESCAPED = re.compile(r"&(\d{1,7});")


def parse_remote_config(value: bytes) -> dict[str, str]:
    """``k=v k=v`` with ``&DECIMAL;`` escapes -> settings (5.4 remote.log)."""
    out: dict[str, str] = {}
    for word in value.decode("utf-8", "surrogateescape").split():
        k, sep, v = word.partition("=")
        if sep:
            out[_unescape(k)] = _unescape(v)
    return out


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return chr(n) if n <= 0x10FFFF else m.group(0)

    return _ESCAPED.sub(one, text)


def _escape(text: str) -> str:
    return "".join(f"&{ord(c)};" if c.isspace() or c == "&" else c for c in text)


def format_remote_config(config: dict[str, str]) -> bytes:
    """Settings -> ``k=v`` words sorted by key; a key must not contain ``=``."""
    words = (f"{_escape(k)}={_escape(v)}" for k, v in sorted(config.items()))
    return " ".join(words).encode("utf-8", "surrogateescape")


def parse_description(value: bytes) -> str:
    """uuid.log value -> description; the two characters ``\\n`` are a newline."""
    return value.decode("utf-8", "surrogateescape").replace("\\n", "\n")


def format_description(description: str) -> bytes:
    text = description.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return text.encode("utf-8", "surrogateescape")


def parse_groups(value: bytes) -> frozenset[str]:
    return frozenset(value.decode("utf-8", "surrogateescape").split())


def format_groups(groups: Iterable[str]) -> bytes:
    return " ".join(sorted(set(groups))).encode("utf-8", "surrogateescape")


# --- union merge (7.2) --------------------------------------------------------


def _line_set(blob: bytes) -> set[bytes]:
    parts = blob.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return set(parts)


def union_blob(local: bytes, incoming: bytes) -> bytes:
    """Union of the lines, sorted in byte order; reuse a side that already is the union."""
    a, b = _line_set(local), _line_set(incoming)
    union = a | b
    if b == union:
        return incoming
    if a == union:
        return local
    return b"".join(line + b"\n" for line in sorted(union))


# --- metadata logs: T FIELD +VALUE -VALUE ... (5.4, .log.met) -------------------


def _metadata_value(word: bytes) -> tuple[bool, bytes] | None:
    """``+v`` / ``-v`` (``!``-prefixed values are base64); None when not a value."""
    if word[:1] not in (b"+", b"-"):
        return None
    body = word[1:]
    if body.startswith(b"!"):
        try:
            body = base64.b64decode(body[1:], validate=True)
        except ValueError:
            return None
    return word[:1] == b"+", body


def parse_metadata_line(line: bytes) -> tuple[Fraction, dict[str, dict[bytes, bool]]]:
    """One line: its clock and, per field (case-folded), value -> set (True) or unset.

    A word that is not a value starts a new field; a later mention of the same
    value in the line wins, as in git-annex.
    """
    stamp, sep, rest = line.partition(b" ")
    if not sep:
        raise ValueError("not 'T FIELD VALUES'")
    fields: dict[str, dict[bytes, bool]] = {}
    current: dict[bytes, bool] | None = None
    for word in rest.split(b" "):
        value = _metadata_value(word) if current is not None else None
        if value is not None and current is not None:
            current[value[1]] = value[0]
            continue
        try:
            name = word.decode("utf-8").casefold()
        except UnicodeDecodeError:
            current = None
            continue
        current = fields.setdefault(name, {})
    return parse_clock(stamp), fields


def current_metadata(blob: bytes, file: str = "") -> dict[str, frozenset[str]]:
    """The metadata currently set on a key, with git-annex's derived fields.

    Lines apply oldest first; the newest mention of a value decides whether it
    is set.  Like git-annex, ``lastchanged`` is the newest line's time and
    ``FIELD-lastchanged`` the time of the newest line naming a set field,
    both as ``YYYY-MM-DD@HH-MM-SS`` in UTC.
    """
    lines = sorted(_parse_all(blob, parse_metadata_line, file, False), key=lambda x: x[0])
    state: dict[str, dict[bytes, bool]] = {}
    changed: dict[str, Fraction] = {}
    for clock, fields in lines:
        for name, values in fields.items():
            if values:  # a field word with no values changes nothing
                state.setdefault(name, {}).update(values)
                changed[name] = clock
    out = {name: frozenset(v.decode("utf-8", "surrogateescape") for v, on in values.items() if on)
           for name, values in state.items()}
    out = {name: values for name, values in out.items() if values}
    for name in list(out):
        out[f"{name}-lastchanged"] = frozenset({_metadata_time(changed[name])})
    if lines:
        out["lastchanged"] = frozenset({_metadata_time(lines[-1][0])})
    return out


def _metadata_time(clock: Fraction) -> str:
    when = datetime.datetime.fromtimestamp(int(clock), datetime.UTC)
    return when.strftime("%Y-%m-%d@%H-%M-%S")
