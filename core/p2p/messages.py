"""P2P protocol messages: one frozen dataclass per message (spec section 5).

Theory of operation
-------------------
Every message of protocol versions 0 to 4 is a frozen dataclass whose fields
are the message's arguments, in wire order.  ``SHAPE`` names the wire
encoding of each field (spec section 3); the codec (``codec.py``) is generic
over these shapes, so a message class is all it takes to add a message.

Messages validate themselves on construction: a message that exists can be
put on the wire and read back.  A bad value raises ``LocalProtocolError``
(building it is the caller's bug); the codec turns that into
``RemoteProtocolError`` when the value came from the peer.

Field types:

- keys are ``core.repo.key.Key``; they must survive ``Key.parse`` of their
  own text (so no control characters, no unsafe ``/``);
- uuids, refs and tokens are ``str`` words (no ASCII whitespace);
- associated files are ``bytes``: the path in the sender's work tree,
  relative, ``b""`` for none.  The wire escaping is lossy (whitespace arrives
  as ``_``), spec section 3;
- numbers are ``int`` in ``0 .. MAX_NUMBER``;
- ERROR text is ``str``; bytes that are not UTF-8 travel as surrogate escapes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from typing import ClassVar

from core.errors import BadKey, LocalProtocolError
from core.repo.key import Key

logger = logging.getLogger(__name__)

MAX_VERSION = 4  # spec section 5: the current maximum
MAX_NUMBER = 2**64 - 1  # offsets, lengths, timestamps, versions, exit codes
ASCII_WHITESPACE = " \t\n\r\x0b\x0c"


class Shape(Enum):
    """How one field is written on the wire (spec section 3)."""

    KEY = "key"  # always the last field: the rest of the line
    UUID = "uuid"
    TOKEN = "token"
    NUMBER = "number"
    FILE = "file"
    SERVICE = "service"
    TEXT = "text"  # rest of the line
    WORDS = "words"  # whitespace-separated list, the whole argument string


class Service(StrEnum):
    """The git services CONNECT can tunnel (spec 6.8)."""

    UPLOAD_PACK = "git-upload-pack"
    RECEIVE_PACK = "git-receive-pack"


def encode_text(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _fail(message: Message, why: str) -> LocalProtocolError:
    return LocalProtocolError(f"bad {message.command.decode()} message: {why}")


def _check_encodable(message: Message, text: str) -> None:
    try:
        encode_text(text)
    except UnicodeError:
        raise _fail(message, f"{text!r} cannot be encoded") from None


def _check_word(message: Message, word: object) -> None:
    if not isinstance(word, str) or not word:
        raise _fail(message, f"{word!r} is not a non-empty word")
    if any(c in ASCII_WHITESPACE for c in word):
        raise _fail(message, f"{word!r} contains whitespace")
    _check_encodable(message, word)


def _check_field(message: Message, shape: Shape, value: object) -> None:
    if shape is Shape.KEY:
        if not isinstance(value, Key):
            raise _fail(message, f"{value!r} is not a Key")
        text = str(value)
        try:
            encode_text(text)
            same = Key.parse(text) == value
        except (BadKey, UnicodeError) as e:
            raise _fail(message, f"key cannot go on the wire: {e}") from None
        if not same:
            raise _fail(message, f"key {text!r} does not read back as itself")
    elif shape is Shape.UUID:
        _check_word(message, value)
    elif shape is Shape.TOKEN:
        if not isinstance(value, str) or not value or not (value.isascii() and value.isalnum()):
            raise _fail(message, "an auth token is [A-Za-z0-9]+")
    elif shape is Shape.NUMBER:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_NUMBER:
            raise _fail(message, f"{value!r} is not a number in 0..{MAX_NUMBER}")
    elif shape is Shape.FILE:
        if not isinstance(value, bytes):
            raise _fail(message, "an associated file is bytes")
        if value.startswith(b"/"):  # spec section 3: absolute paths are unparsable
            raise _fail(message, "an associated file must be a relative path")
    elif shape is Shape.SERVICE:
        if not isinstance(value, Service):
            raise _fail(message, f"{value!r} is not a Service")
    elif shape is Shape.TEXT:
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise _fail(message, "text must be a str without CR or LF")
        _check_encodable(message, value)
    elif shape is Shape.WORDS:
        if not isinstance(value, tuple):
            raise _fail(message, "a word list is a tuple")
        for word in value:
            _check_word(message, word)


class Message:
    """Base of all messages.  ``COMMAND`` is the wire word, ``SHAPE`` the fields."""

    __slots__ = ()
    COMMAND: ClassVar[bytes]
    SHAPE: ClassVar[tuple[Shape, ...]] = ()
    SINCE: ClassVar[int] = 0  # protocol version that introduced it (spec section 5)

    @property
    def command(self) -> bytes:
        return self.COMMAND

    def __post_init__(self) -> None:
        for shape, field in zip(self.SHAPE, fields(self), strict=True):  # type: ignore[arg-type]
            _check_field(self, shape, getattr(self, field.name))


# --- session setup (spec 4) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Auth(Message):
    """Client: authenticate on a networked connection (spec 4.2)."""

    uuid: str
    token: str
    COMMAND = b"AUTH"
    SHAPE = (Shape.UUID, Shape.TOKEN)


@dataclass(frozen=True, slots=True)
class AuthSuccess(Message):
    uuid: str
    COMMAND = b"AUTH-SUCCESS"
    SHAPE = (Shape.UUID,)


@dataclass(frozen=True, slots=True)
class AuthFailure(Message):
    COMMAND = b"AUTH-FAILURE"


@dataclass(frozen=True, slots=True)
class Version(Message):
    """Both: offer (client) or agree (server) a protocol version (spec 4.3)."""

    version: int
    COMMAND = b"VERSION"
    SHAPE = (Shape.NUMBER,)
    SINCE = 1


@dataclass(frozen=True, slots=True)
class Bypass(Message):
    """Client: cluster gateways not to route through (spec 4.4). No reply."""

    uuids: tuple[str, ...] = ()
    COMMAND = b"BYPASS"
    SHAPE = (Shape.WORDS,)
    SINCE = 2


# --- requests (spec 6) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckPresent(Message):
    key: Key
    COMMAND = b"CHECKPRESENT"
    SHAPE = (Shape.KEY,)


@dataclass(frozen=True, slots=True)
class LockContent(Message):
    key: Key
    COMMAND = b"LOCKCONTENT"
    SHAPE = (Shape.KEY,)


@dataclass(frozen=True, slots=True)
class UnlockContent(Message):
    """Takes no key, whatever the design note says (spec section 5)."""

    COMMAND = b"UNLOCKCONTENT"


@dataclass(frozen=True, slots=True)
class Remove(Message):
    key: Key
    COMMAND = b"REMOVE"
    SHAPE = (Shape.KEY,)


@dataclass(frozen=True, slots=True)
class RemoveBefore(Message):
    timestamp: int
    key: Key
    COMMAND = b"REMOVE-BEFORE"
    SHAPE = (Shape.NUMBER, Shape.KEY)
    SINCE = 3


@dataclass(frozen=True, slots=True)
class GetTimestamp(Message):
    COMMAND = b"GETTIMESTAMP"
    SINCE = 3


@dataclass(frozen=True, slots=True)
class Timestamp(Message):
    timestamp: int
    COMMAND = b"TIMESTAMP"
    SHAPE = (Shape.NUMBER,)
    SINCE = 3


@dataclass(frozen=True, slots=True)
class Get(Message):
    offset: int
    file: bytes
    key: Key
    COMMAND = b"GET"
    SHAPE = (Shape.NUMBER, Shape.FILE, Shape.KEY)


@dataclass(frozen=True, slots=True)
class Put(Message):
    file: bytes
    key: Key
    COMMAND = b"PUT"
    SHAPE = (Shape.FILE, Shape.KEY)


@dataclass(frozen=True, slots=True)
class PutFrom(Message):
    offset: int
    COMMAND = b"PUT-FROM"
    SHAPE = (Shape.NUMBER,)


@dataclass(frozen=True, slots=True)
class Connect(Message):
    service: Service
    COMMAND = b"CONNECT"
    SHAPE = (Shape.SERVICE,)


@dataclass(frozen=True, slots=True)
class ConnectDone(Message):
    exit_code: int
    COMMAND = b"CONNECTDONE"
    SHAPE = (Shape.NUMBER,)


@dataclass(frozen=True, slots=True)
class NotifyChange(Message):
    COMMAND = b"NOTIFYCHANGE"


@dataclass(frozen=True, slots=True)
class Changed(Message):
    """The new SHAs of changed ref files, not ref names (spec 6.9)."""

    refs: tuple[str, ...] = ()
    COMMAND = b"CHANGED"
    SHAPE = (Shape.WORDS,)


# --- payloads and replies ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Data(Message):
    """Announces ``length`` raw bytes that follow with no newline (spec 2.3)."""

    length: int
    COMMAND = b"DATA"
    SHAPE = (Shape.NUMBER,)


@dataclass(frozen=True, slots=True)
class DataPresent(Message):
    COMMAND = b"DATA-PRESENT"
    SINCE = 4


@dataclass(frozen=True, slots=True)
class Valid(Message):
    COMMAND = b"VALID"
    SINCE = 1


@dataclass(frozen=True, slots=True)
class Invalid(Message):
    COMMAND = b"INVALID"
    SINCE = 1


@dataclass(frozen=True, slots=True)
class AlreadyHave(Message):
    COMMAND = b"ALREADY-HAVE"


@dataclass(frozen=True, slots=True)
class AlreadyHavePlus(Message):
    uuids: tuple[str, ...] = ()
    COMMAND = b"ALREADY-HAVE-PLUS"
    SHAPE = (Shape.WORDS,)
    SINCE = 2


@dataclass(frozen=True, slots=True)
class Success(Message):
    COMMAND = b"SUCCESS"


@dataclass(frozen=True, slots=True)
class Failure(Message):
    COMMAND = b"FAILURE"


@dataclass(frozen=True, slots=True)
class SuccessPlus(Message):
    uuids: tuple[str, ...] = ()
    COMMAND = b"SUCCESS-PLUS"
    SHAPE = (Shape.WORDS,)
    SINCE = 2


@dataclass(frozen=True, slots=True)
class FailurePlus(Message):
    uuids: tuple[str, ...] = ()
    COMMAND = b"FAILURE-PLUS"
    SHAPE = (Shape.WORDS,)
    SINCE = 2


@dataclass(frozen=True, slots=True)
class Error(Message):
    text: str = ""
    COMMAND = b"ERROR"
    SHAPE = (Shape.TEXT,)


ALL_MESSAGES: tuple[type[Message], ...] = (
    Auth, AuthSuccess, AuthFailure, Version, Bypass,
    CheckPresent, LockContent, UnlockContent, Remove, RemoveBefore,
    GetTimestamp, Timestamp, Get, Put, PutFrom, Connect, ConnectDone,
    NotifyChange, Changed, Data, DataPresent, Valid, Invalid,
    AlreadyHave, AlreadyHavePlus, Success, Failure, SuccessPlus, FailurePlus, Error,
)  # fmt: skip

BY_COMMAND: dict[bytes, type[Message]] = {cls.COMMAND: cls for cls in ALL_MESSAGES}
