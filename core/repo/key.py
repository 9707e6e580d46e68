"""git-annex keys: parse, format, file names, hash directories, hashing.

Spec: repository-format.md section 1 (keys) and 2.2 (hash directories).

A key is ``BACKEND[-sSIZE][-mMTIME][-SCHUNKSIZE][-CCHUNKNUM]--NAME``.  Parsing is
as strict as git-annex's (fields in that order, decimal digits only) and a
parse followed by ``str()`` gives back the same text, so keys of backends we
do not know survive untouched.

Safety rule: every key that reaches a path goes through ``Key.parse``, which
refuses control characters, over-long keys and ``/`` outside the backends
that need it (URL, VURL, WORM); ``file_name`` then escapes ``/`` so a key is
always exactly one path component and never ``.`` or ``..``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import blake3
import xxhash

from core.errors import BadKey, UnverifiableBackend

# A key's file name is used with suffixes up to ".log.rmet" in the branch and
# ".lck"/".rtm" in the object store; 255 bytes is the usual NAME_MAX.
MAX_KEY_FILE_BYTES = 240
MAX_EXTENSION_BYTES = 64  # including the dot, for *E backends (spec 1.1)
_SLASH_BACKENDS = frozenset({"URL", "VURL", "WORM"})
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_FIELD_ORDER = "smSC"


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


def _blake2b(bits: int) -> Callable[[], Hasher]:
    return lambda: hashlib.blake2b(digest_size=bits // 8)


def _blake2s(bits: int) -> Callable[[], Hasher]:
    return lambda: hashlib.blake2s(digest_size=bits // 8)


class _Blake2Parallel:
    """BLAKE2bp / BLAKE2sp: BLAKE2 tree mode, depth 2, built from hashlib's tree parameters.

    The input is dealt out in blocks (128 bytes for b, 64 for s) round-robin
    to ``fanout`` leaves (4 for b, 8 for s); the root hashes the leaves'
    digests.  Only the full-size variants are computable this way: the
    reference BLAKE2sp-224 lets leaves output 32 bytes while their parameter
    block says 28, which hashlib cannot express (checked against
    ``git annex calckey``; see tests/integration/test_backends.py).
    """

    def __init__(self, make: Callable[..., Any], fanout: int, block: int, size: int) -> None:
        tree = {"digest_size": size, "fanout": fanout, "depth": 2, "leaf_size": 0,
                "inner_size": size}
        self._leaves = [make(node_offset=i, node_depth=0, last_node=i == fanout - 1, **tree)
                        for i in range(fanout)]
        self._root = make(node_offset=0, node_depth=1, last_node=True, **tree)
        self._block = block
        self._pos = 0

    def update(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data)
        block, stripe = self._block, self._block * len(self._leaves)
        view = self._blocks(view, min(len(view), -self._pos % stripe))
        full = len(view) - len(view) % stripe
        if full:  # whole stripes: one update per leaf, not one per block (~1.7x faster)
            for i, leaf in enumerate(self._leaves):
                leaf.update(b"".join(view[j:j + block] for j in range(i * block, full, stripe)))
            self._pos += full
        self._blocks(view[full:], len(view) - full)

    def _blocks(self, view: memoryview, count: int) -> memoryview:
        """Deal the first ``count`` bytes block by block; returns the rest."""
        n = len(self._leaves)
        while count:
            leaf, within = divmod(self._pos, self._block)
            chunk = view[: min(self._block - within, count)]
            self._leaves[leaf % n].update(chunk)
            self._pos += len(chunk)
            count -= len(chunk)
            view = view[len(chunk):]
        return view

    def hexdigest(self) -> str:
        root = self._root.copy()
        for leaf in self._leaves:
            root.update(leaf.digest())
        return str(root.hexdigest())


def _blake3() -> Hasher:
    # blake3's stub types update() with a keyword-capable buffer argument
    return blake3.blake3()  # type: ignore[return-value]


def _xxh3() -> Hasher:
    # git-annex's XXH3 is the 64-bit XXH3 in canonical (big-endian) hex (spec 1.2)
    return xxhash.xxh3_64()


# Backend (without its trailing E) -> hasher factory (spec 1.2).  blake3 and
# xxhash are pinned dependencies (README: "Requirements"); every entry is
# checked against ``git annex calckey`` in tests/integration/test_backends.py.
HASHERS: dict[str, Callable[[], Hasher]] = {
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
    "SHA384": hashlib.sha384,
    "SHA224": hashlib.sha224,
    "SHA3_256": hashlib.sha3_256,
    "SHA3_512": hashlib.sha3_512,
    "SHA3_384": hashlib.sha3_384,
    "SHA3_224": hashlib.sha3_224,
    "SHA1": hashlib.sha1,
    "MD5": hashlib.md5,
    **{f"BLAKE2B{b}": _blake2b(b) for b in (160, 224, 256, 384, 512)},
    **{f"BLAKE2S{b}": _blake2s(b) for b in (160, 224, 256)},
    "BLAKE2BP512": lambda: _Blake2Parallel(hashlib.blake2b, 4, 128, 64),
    "BLAKE2SP256": lambda: _Blake2Parallel(hashlib.blake2s, 8, 64, 32),
    "BLAKE3_256": _blake3,
    "XXH3": _xxh3,
}

# Backends whose keys carry no hash: accepted as they come (spec 1.2).
UNHASHED_BACKENDS = frozenset({"WORM", "URL", "VURL"})
# git-annex backends we know but cannot compute (no well-kept package does it
# bit-identically): their content is refused before any byte moves.
UNCOMPUTABLE_BACKENDS = frozenset({"SKEIN256", "SKEIN512", "BLAKE2SP224"})

DEFAULT_BACKEND = "SHA256E"
WRITABLE_BACKENDS = frozenset(HASHERS) | frozenset(b + "E" for b in HASHERS)


def _parse_number(text: str, field: str, whole: str) -> int:
    if not text or not text.isascii() or not text.isdigit():
        raise BadKey(whole, f"field -{field} is not a decimal number")
    if len(text) > 1 and text[0] == "0":
        raise BadKey(whole, f"field -{field} has a leading zero")
    return int(text)


@dataclass(frozen=True, slots=True)
class Key:
    backend: str
    name: str
    size: int | None = None
    mtime: int | None = None
    chunk_size: int | None = None
    chunk_num: int | None = None

    # --- text form ------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Key:
        """Parse a serialized key strictly.

        Raises:
            BadKey: the text is not a key git-annex accepts, or is unsafe as a path.
        """
        head, sep, name = text.partition("--")
        if not sep:
            raise BadKey(text, "no '--' before the name")
        if not name:
            raise BadKey(text, "empty name")
        fields = head.split("-")
        backend = fields[0]
        if not backend:
            raise BadKey(text, "empty backend name")
        values: dict[str, int] = {}
        last = -1
        for field in fields[1:]:
            letter = field[:1]
            pos = _FIELD_ORDER.find(letter) if letter else -1
            if pos < 0:
                raise BadKey(text, f"unknown field {field[:10]!r}")
            if pos <= last:
                raise BadKey(text, "fields out of order")
            last = pos
            values[letter] = _parse_number(field[1:], letter, text)
        key = cls(
            backend,
            name,
            values.get("s"),
            values.get("m"),
            values.get("S"),
            values.get("C"),
        )
        key._check_safe(text)
        return key

    def _check_safe(self, text: str) -> None:
        try:
            text.encode()
        except UnicodeEncodeError:
            raise BadKey(text, "not valid UTF-8") from None
        if _CONTROL.search(text):
            raise BadKey(text, "control character in key")
        if self.backend.endswith("E"):
            dot = self.name.find(".")
            if dot >= 0 and len(self.name[dot:].encode()) > MAX_EXTENSION_BYTES:
                raise BadKey(text, "extension longer than 64 bytes")
        if "/" in text and self.backend not in _SLASH_BACKENDS:
            raise BadKey(text, "'/' in a key of this backend")
        if len(self.file_name().encode()) > MAX_KEY_FILE_BYTES:
            raise BadKey(text, f"longer than {MAX_KEY_FILE_BYTES} bytes as a file name")

    def __str__(self) -> str:
        parts = [self.backend]
        for letter, value in zip(
            _FIELD_ORDER, (self.size, self.mtime, self.chunk_size, self.chunk_num), strict=True
        ):
            if value is not None:
                parts.append(f"{letter}{value}")
        return "-".join(parts) + "--" + self.name

    # --- derived forms --------------------------------------------------------

    def parent(self) -> Key:
        """The key without chunk fields (the key a chunk belongs to)."""
        if self.chunk_size is None and self.chunk_num is None:
            return self
        return Key(self.backend, self.name, self.size, self.mtime)

    def file_name(self) -> str:
        """keyFile: the key as one path component (spec 1.5)."""
        return (
            str(self)
            .replace("&", "&a")
            .replace("%", "&s")
            .replace(":", "&c")
            .replace("/", "%")
        )

    @classmethod
    def from_file_name(cls, file_name: str) -> Key:
        """Reverse of ``file_name``.

        Raises:
            BadKey: not the file name of a valid key.
        """
        pieces = file_name.split("%")
        text = "/".join(
            p.replace("&c", ":").replace("&s", "%").replace("&a", "&") for p in pieces
        )
        return cls.parse(text)

    def hashdir_lower(self) -> str:
        h = hashlib.md5(str(self.parent()).encode()).hexdigest()
        return f"{h[:3]}/{h[3:6]}"

    def hashdir_mixed(self) -> str:
        digest = hashlib.md5(str(self.parent()).encode()).digest()
        w = int.from_bytes(digest[:4], "little")
        c = [_MIXED_ALPHABET[(w >> (6 * i)) & 31] for i in range(8)]
        return f"{c[1]}{c[0]}/{c[3]}{c[2]}"

    # --- content --------------------------------------------------------------

    @property
    def hash_backend(self) -> str:
        """The backend name without the extension marker ``E``."""
        return self.backend[:-1] if self.backend.endswith("E") else self.backend

    @property
    def verifiable(self) -> bool:
        return self.hash_backend in HASHERS

    @property
    def receivable(self) -> bool:
        """Can content of this key be accepted here: hashed, or a backend with no hash."""
        return self.verifiable or self.backend in UNHASHED_BACKENDS

    def new_hasher(self) -> Hasher | None:
        factory = HASHERS.get(self.hash_backend)
        return factory() if factory else None

    def receiving_hasher(self) -> Hasher | None:
        """The hasher that verifies content arriving for this key; None for WORM/URL/VURL.

        Raises:
            UnverifiableBackend: no hash of ours computes this backend, so the
                content must not be transferred at all.
        """
        if not self.receivable:
            raise self.refusal()
        return self.new_hasher()

    def refusal(self) -> UnverifiableBackend:
        """Why content of this key is not transferred (for a key that is not ``receivable``)."""
        return UnverifiableBackend(str(self), self.backend, self.hash_backend in UNCOMPUTABLE_BACKENDS)

    def expected_digest(self) -> str:
        """The hash part of the name: everything before the first dot."""
        digest = self.name.split(".", 1)[0]
        return digest[1:] if digest.startswith("\\") else digest


_MIXED_ALPHABET = "0123456789zqjxkmvwgpfZQJXKMVWGPF"


# --- making keys for files ----------------------------------------------------


def _valid_extension_piece(piece: bytes) -> bool:
    return all(b >= 0x80 or chr(b).isalnum() for b in piece)


def extension(filename: str, max_length: int = 4, max_count: int = 2) -> str:
    """The extension git-annex puts into an ``*E`` key for this file (spec 1.3)."""
    base = os.path.basename(filename).lstrip(".")
    if "." not in base:
        return ""
    pieces = base.split(".")[1:]
    kept: list[str] = []
    for piece in reversed(pieces):
        raw = piece.encode()
        if len(raw) > max_length:
            break
        if _valid_extension_piece(raw):
            kept.append(piece)
    chosen = [p for p in kept[:max_count] if p]
    return "".join("." + p for p in reversed(chosen))


def key_for_digest(
    backend: str,
    hexdigest: str,
    size: int,
    filename: str,
    max_extension_length: int = 4,
    max_extensions: int = 2,
) -> Key:
    name = hexdigest
    if backend.endswith("E"):
        name += extension(filename, max_extension_length, max_extensions)
    return Key(backend, name, size=size)


def hasher_for_backend(backend: str) -> Hasher:
    """A fresh hasher for a backend we can write keys of.

    Raises:
        BadKey: the backend cannot be computed here.
    """
    base = backend[:-1] if backend.endswith("E") else backend
    factory = HASHERS.get(base)
    if factory is None:
        raise BadKey(backend + "--", "cannot compute keys of this backend")
    return factory()
