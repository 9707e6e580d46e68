"""Pairing wire format: frames, messages and the hello payload (pairing.md 6.5).

Theory of operation
-------------------
A frame is a 4-byte big-endian length, then that many bytes of UTF-8 JSON
(one object with a string ``t``).  Lengths are checked before anything is
buffered (``MAX_FRAME``), so a peer cannot make us hold more than one frame.
Parsing is strict: unknown types, missing or extra fields, bad base64 and
wrong sizes are ``RemoteProtocolError``.  The hello payload travels sealed
(``machine``); here it is only built and checked.  See docs/pairing.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from core.errors import RemoteProtocolError

VERSION = 1
MAX_FRAME = 16 * 1024
MAX_REPOS = 64
MAX_TRANSPORTS = 16
_LEN = struct.Struct(">I")
_TYPES: dict[str, frozenset[str]] = {  # the fields of each message, exactly
    "pake": frozenset({"v", "t", "np", "m"}),
    "confirm": frozenset({"t", "mac"}),
    "hello": frozenset({"t", "box"}),
    "done": frozenset({"t", "box"}),
    "refused": frozenset({"t", "why"}),
}
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_HOSTPORT = re.compile(r"[A-Za-z0-9.:\[\]_-]{1,100}:[0-9]{1,5}")
_JID = re.compile(r"[^\s\x00-\x1f\x7f]{3,300}")


def format_frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), sort_keys=True).encode("utf-8")
    if len(body) > MAX_FRAME:
        raise ValueError("a pairing message must fit in one frame")
    return _LEN.pack(len(body)) + body


class FrameBuffer:
    """Bytes in, whole parsed messages out; nothing beyond one frame kept."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= _LEN.size:
            (n,) = _LEN.unpack_from(self._buf)
            if not 0 < n <= MAX_FRAME:
                raise RemoteProtocolError(f"a pairing frame of {n} bytes (at most {MAX_FRAME})")
        if len(self._buf) > _LEN.size + MAX_FRAME:
            raise RemoteProtocolError("more than one pairing frame at a time")

    @property
    def pending(self) -> int:
        return len(self._buf)

    def next_message(self) -> dict[str, Any] | None:
        """The next whole message, or None while it is incomplete.

        Raises:
            RemoteProtocolError: a frame that is not a valid message.
        """
        if len(self._buf) < _LEN.size:
            return None
        (n,) = _LEN.unpack_from(self._buf)
        if len(self._buf) < _LEN.size + n:
            return None
        body = bytes(self._buf[_LEN.size:_LEN.size + n])
        del self._buf[:_LEN.size + n]
        self.feed(b"")  # check the next length at once
        return parse_message(body)


def parse_message(body: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RemoteProtocolError(f"a pairing frame that is not JSON: {e}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
        raise RemoteProtocolError("a pairing message without a type")
    fields = _TYPES.get(msg["t"])
    if fields is None:
        raise RemoteProtocolError(f"unknown pairing message {msg['t'][:40]!r}")
    if set(msg) != fields:
        raise RemoteProtocolError(f"pairing message {msg['t']} with fields {sorted(msg)}")
    return msg


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(value: object, what: str, size: int | None = None, limit: int = MAX_FRAME) -> bytes:
    if not isinstance(value, str) or len(value) > limit:
        raise RemoteProtocolError(f"{what} is not base64 text")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteProtocolError(f"{what} is not base64") from None
    if size is not None and len(raw) != size:
        raise RemoteProtocolError(f"{what} is {len(raw)} bytes, not {size}")
    return raw


# --- the hello payload ---------------------------------------------------------


@dataclass(frozen=True)
class RepoOffer:
    """A repository offered for sharing: its annex uuid and description."""

    uuid: str
    description: str


@dataclass(frozen=True)
class Hello:
    """What each device tells the other, sealed (pairing.md 6.5 step 4)."""

    device_id: str
    name: str
    static_key: bytes  # raw X25519 public key
    repos: tuple[RepoOffer, ...] = ()
    lan: tuple[str, ...] = ()  # HOST:PORT where it serves paired devices
    xmpp: str | None = None  # full JID
    session_versions: tuple[int, ...] = (1,)

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "name": self.name, "static_key": b64(self.static_key),
                "repos": [{"uuid": r.uuid, "description": r.description} for r in self.repos],
                "transports": {"lan": list(self.lan), "xmpp": self.xmpp},
                "protocols": {"session": list(self.session_versions)}}  # fmt: skip


def parse_hello(data: bytes) -> Hello:
    """The peer's hello from its opened box.

    Raises:
        RemoteProtocolError: any field missing, of the wrong kind or size.
    """
    try:
        d = json.loads(data.decode("utf-8"))
        t = d["transports"]
        hello = Hello(
            device_id=str(uuid.UUID(_text(d["device_id"]))), name=_text(d["name"]),
            static_key=unb64(d["static_key"], "static key", 32),
            repos=tuple(RepoOffer(str(uuid.UUID(_text(r["uuid"]))), _text(r["description"], True))
                        for r in _list(d["repos"], MAX_REPOS)),
            lan=tuple(_checked(a, _HOSTPORT) for a in _list(t["lan"], MAX_TRANSPORTS)),
            xmpp=None if t["xmpp"] is None else _checked(t["xmpp"], _JID),
            session_versions=tuple(int(v) for v in _list(d["protocols"]["session"], 8)),
        )  # fmt: skip
    except RemoteProtocolError:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise RemoteProtocolError(f"the other device's hello is not valid: {e!r}") from None
    return hello


def _text(value: object, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or not (_PRINTABLE.fullmatch(value) or (empty_ok and not value)):
        raise ValueError("a name or description with control characters, empty or too long")
    return value


def _checked(value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"not a transport address: {str(value)[:60]!r}")
    return value


def _list(value: object, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise ValueError(f"not a list of at most {limit}")
    return value
