"""P2P wire codec: lines to messages and back, and the receive buffer.

Theory of operation
-------------------
``parse_message`` and ``format_message`` are a pure pair over one line
(spec 2.1 framing, 2.2 tokenising, 3 field encodings).  Tokenising is
git-annex's:

1. the command word ends at the first whitespace character, which is dropped;
2. a message with N fixed fields splits the rest N-1 times at the first
   whitespace character, each time dropping just that character; the last
   field is the whole remainder (so keys, always last, may hold spaces, and an
   empty associated file shows up as two consecutive spaces);
3. list messages split the rest on runs of whitespace;
4. a message without fields accepts nothing after the word but the one
   dropped separator.

"Whitespace" here is ASCII whitespace; lines are bytes and only fields known
to be text are decoded (UTF-8 with surrogate escapes, so any byte survives).

Numbers are strict: ASCII digits only (leading zeros are accepted because
git-annex accepts them), no sign, space or underscore, at most
``MAX_NUMBER`` (VERSION alone saturates: a huge offer is a future version).
Every failure is a ``RemoteProtocolError`` whose hint is ``unknown command``,
the reply git-annex gives to an unparsable line (spec section 8).

Where git-annex 10.20261026 is not sane we stay strict (checked against
git-annex-shell, tests/integration/test_p2p_stdio_edges.py): ``GET -3 ...``
makes git-annex send a wrong DATA length and die, ``VERSION -1`` is echoed
back, ``VERSION 1 2`` loses its ``2``, and ``SHA256E-s012--...`` is taken as a
key; each is ``ERROR unknown command`` here.

``ReceiveBuffer`` implements spec 2.1/2.3 framing: "next line if complete"
and "at most N bytes" from the same buffer, with a cap on an incomplete line
(git-annex drops the connection after 32768 characters without LF).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from core.errors import BadKey, LocalProtocolError, RemoteProtocolError
from core.p2p.messages import (
    BY_COMMAND,
    MAX_NUMBER,
    Auth,
    Message,
    Service,
    Shape,
    Version,
    decode_text,
    encode_text,
)
from core.repo.key import Key

logger = logging.getLogger(__name__)

MAX_LINE = 32768  # spec 2.1: this many bytes without an LF breaks the connection
UNKNOWN_COMMAND = "unknown command"

_WHITESPACE = re.compile(rb"[ \t\n\r\x0b\x0c]")
_DIGITS = re.compile(rb"[0-9]{1,40}")
_TOKEN = re.compile(rb"[A-Za-z0-9]+")
_MAX_DIGITS = len(str(MAX_NUMBER))


class _Unparsable(Exception):
    """Internal: one field did not decode."""


# --- fields ---------------------------------------------------------------------


def _parse_number(raw: bytes) -> int:
    if _DIGITS.fullmatch(raw) is None:
        raise _Unparsable(f"not a plain decimal number: {raw[:30]!r}")
    digits = raw.lstrip(b"0") or b"0"
    if len(digits) > _MAX_DIGITS or int(digits) > MAX_NUMBER:
        raise _Unparsable("number too large")
    return int(digits)


def _parse_version(raw: bytes) -> int:
    """VERSION's number; one larger than we can hold is a future version.

    git-annex-shell answers ``VERSION 99999999999999999999999`` with its own
    highest version, so a huge offer saturates (the machine then agrees on
    ``MAX_VERSION``).  ``VERSION -1`` and ``VERSION 1 2`` stay refused
    (``ERROR unknown command``): git-annex echoes ``VERSION -1`` back and
    drops the ``2``, neither of which is a version (checked, 10.20261026).
    """
    try:
        return _parse_number(raw)
    except _Unparsable:
        if _DIGITS.fullmatch(raw) is None:
            raise
        return MAX_NUMBER


def escape_file(path: bytes) -> bytes:
    """Spec 3: ``%`` becomes ``%%``, each whitespace byte a single ``%``."""
    return _WHITESPACE.sub(b"%", path.replace(b"%", b"%%"))


def unescape_file(word: bytes) -> bytes:
    """Spec 3: ``%%`` is ``%``, a lone ``%`` and control bytes become ``_``."""
    out = bytearray()
    i = 0
    while i < len(word):
        b = word[i]
        if b == 0x25 and word[i + 1 : i + 2] == b"%":
            out.append(0x25)
            i += 2
            continue
        out.append(0x5F if b == 0x25 or b < 0x20 or b == 0x7F else b)
        i += 1
    return bytes(out)


def _parse_key(raw: bytes) -> Key:
    try:
        return Key.parse(decode_text(raw))
    except (BadKey, UnicodeError) as e:
        # UnicodeError: a non-UTF-8 key cannot pass Key.parse's length check.
        raise _Unparsable(f"bad key: {e}") from None


def _parse_word(raw: bytes) -> str:
    if not raw:
        raise _Unparsable("empty word")
    return decode_text(raw)


def _parse_field(shape: Shape, raw: bytes) -> object:
    if shape is Shape.KEY:
        return _parse_key(raw)
    if shape is Shape.NUMBER:
        return _parse_number(raw)
    if shape is Shape.UUID:
        return _parse_word(raw)
    if shape is Shape.TOKEN:
        if _TOKEN.fullmatch(raw) is None:
            raise _Unparsable("bad auth token")
        return raw.decode("ascii").lower()  # spec 3: compared case-insensitively
    if shape is Shape.FILE:
        path = unescape_file(raw)
        if path.startswith(b"/"):
            raise _Unparsable("absolute associated file")
        return path
    if shape is Shape.SERVICE:
        try:
            return Service(raw.decode("ascii"))
        except (UnicodeError, ValueError):
            raise _Unparsable("unknown service") from None
    if shape is Shape.TEXT:
        return decode_text(raw)
    return tuple(decode_text(w) for w in raw.split())  # Shape.WORDS


def _format_field(shape: Shape, value: object) -> list[bytes]:
    if shape is Shape.WORDS:
        assert isinstance(value, tuple)
        return [encode_text(w) for w in value]
    if shape is Shape.FILE:
        assert isinstance(value, bytes)
        return [escape_file(value)]
    if shape is Shape.SERVICE:
        assert isinstance(value, Service)
        return [value.value.encode("ascii")]
    if shape is Shape.NUMBER:
        return [str(value).encode("ascii")]
    return [encode_text(str(value))]


# --- lines ------------------------------------------------------------------------


def _split(args: bytes, count: int) -> list[bytes]:
    """Split ``args`` into ``count`` fields, the last taking the remainder."""
    parts: list[bytes] = []
    for _ in range(count - 1):
        m = _WHITESPACE.search(args)
        if m is None:
            raise _Unparsable("missing field")
        parts.append(args[: m.start()])
        args = args[m.start() + 1 :]
    parts.append(args)
    return parts


def parse_message(line: bytes) -> Message:
    """Parse one line (a trailing LF, or CRLF, is allowed and dropped).

    Raises:
        RemoteProtocolError: the line is unparsable; ``error_hint`` is
            ``"unknown command"``.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):  # spec 2.1: CRLF is accepted
        line = line[:-1]
    m = _WHITESPACE.search(line)
    word, args = (line, b"") if m is None else (line[: m.start()], line[m.start() + 1 :])
    cls = BY_COMMAND.get(word)
    try:
        if cls is None:
            raise _Unparsable("unknown command word")
        if not cls.SHAPE:
            if args:
                raise _Unparsable("arguments after a message that takes none")
            return cls()
        values: list[object]
        if cls is Version:
            values = [_parse_version(args)]
        elif cls.SHAPE == (Shape.WORDS,):
            values = [_parse_field(Shape.WORDS, args)]
        else:
            raws = _split(args, len(cls.SHAPE))
            values = [_parse_field(s, r) for s, r in zip(cls.SHAPE, raws, strict=True)]
        factory: Callable[..., Message] = cls  # the dataclass __init__, fields in SHAPE order
        return factory(*values)
    except (_Unparsable, LocalProtocolError) as e:
        shown = line[:60]
        raise RemoteProtocolError(f"unparsable line {shown!r}: {e}", UNKNOWN_COMMAND) from None


def format_message(message: Message) -> bytes:
    """The wire form of a message, LF included."""
    words = [message.COMMAND]
    values = [getattr(message, name) for name in _field_names(type(message))]
    for shape, value in zip(message.SHAPE, values, strict=True):
        words.extend(_format_field(shape, value))
    return b" ".join(words) + b"\n"


_NAMES: dict[type[Message], tuple[str, ...]] = {}


def _field_names(cls: type[Message]) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = tuple(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        _NAMES[cls] = names
    return names


def redact(line: bytes) -> bytes:
    """A line safe to log: AUTH tokens hidden."""
    if line.startswith(Auth.COMMAND + b" "):
        return line.rsplit(b" ", 1)[0] + b" <token>"
    return line


# --- receive buffer ------------------------------------------------------------------


class ReceiveBuffer:
    """Bytes received and not yet consumed: lines, then counted bytes.

    ``next_line`` never rescans bytes it has already searched, so feeding one
    byte at a time stays linear.  A ``bytes`` chunk fed into an empty buffer
    is kept as it is until a line is asked for: a payload chunk that arrives
    alone (as over ``core.p2p.pipe``) leaves through ``take`` uncopied.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._data = bytearray()
        self._whole: bytes | None = None  # only while _data is empty
        self._scanned = 0  # no LF in _data[:_scanned]
        self.max_line = max_line

    def __len__(self) -> int:
        return len(self._whole) if self._whole is not None else len(self._data)

    def __bool__(self) -> bool:
        return bool(self._whole) or bool(self._data)

    def feed(self, data: bytes) -> None:
        if self._whole is None and not self._data and type(data) is bytes:
            self._whole = data
            return
        self._spill()
        self._data += data

    def _spill(self) -> None:
        if self._whole is not None:
            self._data += self._whole
            self._whole = None

    def next_line(self) -> bytes | None:
        """The next complete line without its LF (a CR stays), or None.

        Raises:
            RemoteProtocolError: ``max_line`` bytes arrived without an LF
                (no ERROR is sent for this, spec 2.1).
        """
        self._spill()
        end = self._data.find(b"\n", self._scanned)
        if end < 0 or end >= self.max_line:
            if end >= 0 or len(self._data) >= self.max_line:
                raise RemoteProtocolError(f"line longer than {self.max_line - 1} bytes")
            self._scanned = len(self._data)
            return None
        line = bytes(self._data[:end])
        del self._data[: end + 1]
        self._scanned = 0
        return line

    def take(self, limit: int) -> bytes:
        """At most ``limit`` bytes, possibly none (at most one copy: payloads pass through here)."""
        whole = self._whole
        if whole is not None:
            if limit >= len(whole):
                self._whole = None
                return whole
            self._spill()
        if limit >= len(self._data):
            chunk = bytes(self._data)
            self._data.clear()
        else:
            with memoryview(self._data) as view:
                chunk = view[:limit].tobytes()
            del self._data[:limit]
        self._scanned = max(0, self._scanned - len(chunk))
        return chunk
