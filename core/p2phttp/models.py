"""The P2P HTTP API as data: routes, parameter encodings, JSON bodies.

Spec: the reference notes p2phttp.md sections 4 (encodings), 5 (routes and JSON
shapes), 7 (versions and status codes).  Pure: no sockets, files or clock;
``server`` and ``client`` do the I/O.

Theory of operation
-------------------
A request is parsed from its *raw* request target (path and query exactly as
sent), because ``%2F`` inside the key segment is a ``/`` in the key name
(spec 4) and must not split the path.  ``parse_request`` returns an
``ApiRequest`` or raises ``HttpError`` carrying the status and plain-text body
git-annex's server would send (spec 7.2):

- 404: a path matching no route, or a version number we do not serve at all
  (v5+).  git-annex says ``400 bad version`` there; spec pitfall 4 asks for
  404 so that a newer client falls back (documented departure).
- 400 ``bad version``: a route that exists in other versions (``v0/putoffset``,
  ``v2/gettimestamp``) or a wrong method on a valid path (spec 7.1).
- 400 with git-annex's wording for a missing or unparsable parameter/header.

The server UUID is checked against the served repositories by the server
(unknown: 404), after routing.  Keys go through ``Key.parse``, which refuses
path tricks and control characters, so a parsed key is always safe as one
path component.

Parameters (spec 4): plain values are percent-decoded UTF-8 (``+`` is a space
in the query); ``[base64url]`` (padded) is the alternative form, decoded after
percent-decoding.  ``format_param`` gives the plain form unless the value
needs brackets, as the git-annex client does.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from core.errors import BadKey, RemoteProtocolError
from core.repo.key import Key

logger = logging.getLogger(__name__)

API_VERSIONS = (4, 3, 2, 1, 0)  # newest first: the client's fallback order (7.1)
DEFAULT_PORT = 9417  # spec 2.1
DATA_LENGTH = "X-git-annex-data-length"
JSON_TYPE = "application/json"
JSON_CONTENT_TYPE = "application/json;charset=utf-8"
OCTET_STREAM = "application/octet-stream"
REALM_CHALLENGE = 'Basic realm="git-annex", charset="UTF-8"'  # spec 6


class Op(Enum):
    """One endpoint of spec 5.1."""

    KEY = "key"
    CHECKPRESENT = "checkpresent"
    REMOVE = "remove"
    REMOVE_BEFORE = "remove-before"
    GETTIMESTAMP = "gettimestamp"
    PUT = "put"
    PUTOFFSET = "putoffset"
    LOCKCONTENT = "lockcontent"
    KEEPLOCKED = "keeplocked"


class Action(Enum):
    """Action classes for authorisation (spec 5, 6)."""

    READ = "read"
    WRITE = "write"
    REMOVE = "remove"
    LOCK = "lock"


ACTION = {
    Op.KEY: Action.READ, Op.CHECKPRESENT: Action.READ, Op.GETTIMESTAMP: Action.READ,
    Op.PUT: Action.WRITE, Op.PUTOFFSET: Action.WRITE,
    Op.REMOVE: Action.REMOVE, Op.REMOVE_BEFORE: Action.REMOVE,
    Op.LOCKCONTENT: Action.LOCK, Op.KEEPLOCKED: Action.LOCK,
}  # fmt: skip

# Versions each versioned route exists in (spec 5.1).
VERSIONS: dict[Op, frozenset[int]] = {
    op: frozenset(range(5)) for op in Op if op is not Op.KEY
} | {
    Op.KEY: frozenset(range(5)),
    Op.REMOVE_BEFORE: frozenset({3, 4}),
    Op.GETTIMESTAMP: frozenset({3, 4}),
    Op.PUTOFFSET: frozenset({1, 2, 3, 4}),
}
_OP_NAMES = frozenset(op.value for op in Op)
_METHODS = {op: ("GET", "HEAD") if op is Op.KEY else ("POST",) for op in Op}
_NEEDS_KEY = frozenset({Op.CHECKPRESENT, Op.REMOVE, Op.REMOVE_BEFORE, Op.PUT, Op.PUTOFFSET,
                        Op.LOCKCONTENT})  # fmt: skip


class HttpError(Exception):
    """A request refused before it reached a handler: status and plain-text body."""

    def __init__(self, status: int, text: str = "", headers: Mapping[str, str] | None = None):
        super().__init__(f"{status} {text}".strip())
        self.status = status
        self.text = text
        self.headers = dict(headers or {})


# --- parameter encodings (spec 4) ---------------------------------------------


def decode_param(raw: str, name: str) -> str:
    """A decoded parameter value: plain or ``[base64url]`` (padded).

    Non-UTF-8 bytes survive as surrogate escapes, so a key made of them is
    then refused by ``Key.parse``.

    Raises:
        HttpError: 400, the bracket form is not valid padded base64url.
    """
    if len(raw) >= 2 and raw.startswith("[") and raw.endswith("]"):
        inner = raw[1:-1]
        try:
            if len(inner) % 4 or not inner.isascii():
                raise ValueError("unpadded")
            data = base64.urlsafe_b64decode(inner.encode())
            if not data:
                raise ValueError("empty")
        except (ValueError, binascii.Error):
            raise HttpError(
                400,
                f"Error parsing query parameter {name} failed: unable to base64 decode [] wrapped value",
            ) from None
        return data.decode("utf-8", "surrogateescape")
    return raw


def format_param(value: str) -> str:
    """The wire form of a key, UUID or file name, not yet percent-encoded."""
    try:
        value.encode("utf-8")
        plain_ok = not (value.startswith("[") and value.endswith("]"))
    except UnicodeEncodeError:
        plain_ok = False
    if plain_ok:
        return value
    raw = value.encode("utf-8", "surrogateescape")
    return "[" + base64.urlsafe_b64encode(raw).decode() + "]"


def quote_param(value: str) -> str:
    """Percent-encode for a path segment or a query value (``/`` too)."""
    return quote(format_param(value), safe="-_.~")


def parse_key(raw: str, name: str = "key") -> Key:
    try:
        return Key.parse(decode_param(raw, name))
    except BadKey:
        raise HttpError(400, f"Error parsing query parameter {name} failed: key parse error") from None


def parse_uuid(raw: str, name: str) -> str:
    value = decode_param(raw, name)
    if not value:
        raise HttpError(400, f"Error parsing query parameter {name} failed: empty UUID")
    if any(ord(c) < 0x20 for c in value):
        raise HttpError(400, f"Error parsing query parameter {name} failed: bad UUID")
    return value


MAX_NUMBER_DIGITS = 1000  # far past any offset or clock; int() of it stays cheap


def parse_number(raw: str, name: str) -> int:
    """A decimal integer as the spec accepts it (digits only, any size).

    git-annex reads offsets and timestamps as unbounded integers, so a huge
    offset is past the end (an empty download) and a huge timestamp is in
    the future.  A sign is refused: git-annex takes ``offset=-1`` and answers
    an empty download, but a negative offset or timestamp is no position, so
    we keep the strict 400 (documented departure, ``server.py``).
    """
    if not raw or not raw.isascii() or not raw.isdigit() or len(raw) > MAX_NUMBER_DIGITS:
        raise HttpError(400, f"Error parsing query parameter {name} failed: {name} parse error")
    return int(raw)


def parse_bool(raw: str, name: str) -> bool:
    if raw in ("true", "false"):
        return raw == "true"
    raise HttpError(400, f"Error parsing query parameter {name} failed: {name} parse error")


# --- requests ---------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    """One parsed API request (spec 5); ``version`` None for the plain key path."""

    server_uuid: str
    op: Op
    version: int | None
    key: Key | None = None
    client_uuid: str | None = None
    associated_file: str | None = None
    offset: int | None = None
    timestamp: int | None = None
    data_present: bool = False
    lock_id: str | None = None
    data_length: int | None = None
    bypass: tuple[str, ...] = ()

    @property
    def action(self) -> Action:
        return ACTION[self.op]

    @property
    def api_version(self) -> int:
        """The version a reply is shaped for (the plain path behaves as v0)."""
        return 0 if self.version is None else self.version


def split_target(raw_target: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Raw path segments (still percent-encoded) and decoded query pairs."""
    path, _, query = raw_target.partition("?")
    path = path.split("#", 1)[0]
    pairs = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="surrogateescape")
    return path.split("/"), pairs


def _segment(raw: str) -> str:
    return unquote_to_bytes(raw).decode("utf-8", "surrogateescape")


def _route(segments: list[str], method: str) -> tuple[str, Op, int | None, str | None]:
    """(raw server uuid, op, version, raw key segment) or HttpError 404/400."""
    while len(segments) > 1 and segments[0] == "" and segments[1] == "":
        segments = segments[1:]  # ``//git-annex/...`` (spec 2.1, a convenience)
    if len(segments) > 4 and segments[-1] == "":
        segments = segments[:-1]  # one trailing slash, as git-annex's router allows
    if len(segments) < 4 or segments[0] != "" or segments[1] != "git-annex" or not segments[2]:
        raise HttpError(404)
    uuid, rest = segments[2], segments[3:]
    key: str | None
    version: int | None
    if len(rest) == 2 and rest[0] == "key":
        op, version, key = Op.KEY, None, rest[1]
    else:
        vtext = rest[0]
        digits = vtext[1:]
        if not (vtext.startswith("v") and digits.isascii() and digits.isdigit()):
            raise HttpError(404)
        if len(digits) > 1 and digits[0] == "0":
            raise HttpError(404)  # ``v04`` is no version (git-annex: 400 bad version)
        if len(rest) < 2 or len(rest) > 3 or rest[1] not in _OP_NAMES:
            raise HttpError(404)
        op = Op(rest[1])
        if (op is Op.KEY) != (len(rest) == 3):
            raise HttpError(404)
        version = int(vtext[1:]) if len(vtext) < 6 else 99
        key = rest[2] if op is Op.KEY else None
        if version > max(API_VERSIONS):
            raise HttpError(404)  # pitfall 4: let a newer client fall back
        if version not in VERSIONS[op]:
            raise HttpError(400, "bad version")
    if method not in _METHODS[op]:
        raise HttpError(400, "bad version")  # as git-annex answers (spec 7.1)
    return uuid, op, version, key


def parse_request(
    method: str, raw_target: str, header: Callable[[str], str | None]
) -> ApiRequest:
    """Parse one request from its method, raw target and headers.

    Raises:
        HttpError: 404 no such route, 400 bad version/parameter/header.
    """
    segments, pairs = split_target(raw_target)
    raw_uuid, op, version, raw_key = _route(segments, method)
    server_uuid = parse_uuid(_segment(raw_uuid), "uuid")
    query: dict[str, str] = {}
    bypass: list[str] = []
    for name, value in pairs:
        if name == "bypass":
            bypass.append(parse_uuid(value, "bypass"))
        else:
            query.setdefault(name, value)

    def required(name: str) -> str:
        if name not in query:
            raise HttpError(400, f"Query parameter {name} is required")
        return query[name]

    fields: dict[str, object] = {}
    if raw_key is not None:
        fields["key"] = parse_key(_segment(raw_key))
    if op in _NEEDS_KEY:
        fields["key"] = parse_key(required("key"))
    if op is not Op.KEEPLOCKED and version is not None:
        fields["client_uuid"] = parse_uuid(required("clientuuid"), "clientuuid")
    elif "clientuuid" in query:
        fields["client_uuid"] = parse_uuid(query["clientuuid"], "clientuuid")
    if op is Op.KEEPLOCKED:
        fields["lock_id"] = parse_uuid(required("lockid"), "lockid")
    if op is Op.REMOVE_BEFORE:
        fields["timestamp"] = parse_number(required("timestamp"), "timestamp")
    if op in (Op.KEY, Op.PUT) and version is not None:
        if "associatedfile" in query:
            fields["associated_file"] = decode_param(query["associatedfile"], "associatedfile")
        if "offset" in query:
            fields["offset"] = parse_number(query["offset"], "offset")
    if op is Op.PUT:
        if version == 4 and "data-present" in query:  # ignored below v4 (spec 5.1)
            fields["data_present"] = parse_bool(query["data-present"], "data-present")
        length = header(DATA_LENGTH)
        if length is None:
            raise HttpError(400, f"Header {DATA_LENGTH} is required")
        if not length.isascii() or not length.strip().isdigit() or len(length) > 20:
            raise HttpError(400, f"Error parsing header {DATA_LENGTH} failed: parse error")
        fields["data_length"] = int(length)
    return ApiRequest(server_uuid, op, version, bypass=tuple(bypass), **fields)  # type: ignore[arg-type]


# --- JSON bodies (spec 5.1) ---------------------------------------------------------

Json = dict[str, object]


def _plus(version: int, body: Json, plus: Sequence[str]) -> Json:
    return {"plusuuids": list(plus), **body} if version >= 2 else body


def present_body(present: bool) -> Json:
    return {"present": present}


def removed_body(version: int, removed: bool, plus: Sequence[str] = ()) -> Json:
    return _plus(version, {"removed": removed}, plus)


def stored_body(version: int, stored: bool, plus: Sequence[str] = ()) -> Json:
    return _plus(version, {"stored": stored}, plus)


def offset_body(version: int, offset: int | None, plus: Sequence[str] = ()) -> Json:
    """``{"offset":N}``, or ``alreadyhave`` when ``offset`` is None."""
    if offset is not None:
        return {"offset": offset}
    return {"alreadyhave": True, **({"plusuuids": list(plus)} if version >= 2 else {})}


def locked_body(lock_id: str | None) -> Json:
    return {"locked": True, "lockid": lock_id} if lock_id else {"locked": False}


def timestamp_body(timestamp: int) -> Json:
    return {"timestamp": timestamp}


def dump(body: Json) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


# --- client side: reading replies ---------------------------------------------------


def load(raw: bytes, what: str) -> Json:
    """Parse a JSON object reply.

    Raises:
        RemoteProtocolError: not a JSON object.
    """
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RemoteProtocolError(f"{what}: reply is not JSON: {raw[:80]!r}") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what}: reply is not a JSON object: {raw[:80]!r}")
    return value


def field_bool(body: Json, name: str, what: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise RemoteProtocolError(f"{what}: reply lacks a boolean {name!r}: {body!r}")
    return value


def field_int(body: Json, name: str, what: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RemoteProtocolError(f"{what}: reply lacks a number {name!r}: {body!r}")
    return value


def plus_uuids(body: Json) -> list[str]:
    """``plusuuids``, missing meaning none (spec 5.1, pitfall 11)."""
    value = body.get("plusuuids", [])
    if not isinstance(value, list):
        return []
    return [u for u in value if isinstance(u, str)]


@dataclass(frozen=True)
class PutOffset:
    offset: int | None  # None: the server already has the content
    plus: tuple[str, ...] = ()


def parse_putoffset(body: Json) -> PutOffset:
    if body.get("alreadyhave") is True:
        return PutOffset(None, tuple(plus_uuids(body)))
    return PutOffset(field_int(body, "offset", "putoffset"))


def parse_data_length(value: str | None) -> int:
    """The download's ``X-git-annex-data-length`` (required, spec 5.2 pitfall 1).

    Raises:
        RemoteProtocolError: missing or not a decimal number.
    """
    if value is None:
        raise RemoteProtocolError(f"missing {DATA_LENGTH} header")
    v = value.strip()
    if not v.isascii() or not v.isdigit() or len(v) > 20:
        raise RemoteProtocolError(f"bad {DATA_LENGTH} header {value!r}")
    return int(v)


def unlock_line(unlock: bool) -> bytes:
    """One value of the keeplocked request body (spec 5.11)."""
    return b'{"unlock":true}\n' if unlock else b'{"unlock":false}\n'


__all__ = [
    "ACTION", "API_VERSIONS", "DATA_LENGTH", "DEFAULT_PORT", "JSON_CONTENT_TYPE", "JSON_TYPE",
    "OCTET_STREAM", "REALM_CHALLENGE", "VERSIONS", "Action", "ApiRequest", "HttpError", "Json",
    "Op", "PutOffset", "decode_param", "dump", "field_bool", "field_int", "format_param", "load",
    "locked_body", "offset_body", "parse_bool", "parse_data_length", "parse_key", "parse_number",
    "parse_putoffset", "parse_request", "parse_uuid", "plus_uuids", "present_body",
    "quote_param", "removed_body", "split_target", "stored_body", "timestamp_body", "unlock_line",
]  # fmt: skip
