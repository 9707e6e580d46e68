"""How an annexed file looks in git and in the work tree.

Spec: repository-format.md section 3.

* Locked: a symlink whose target is the relative path to the object, through
  ``.git/annex/objects`` with mixed hash directories (lower ones in repositories
  tuned with annex.tune.objecthashlower), without a trailing newline (3.1).
* Unlocked: a pointer blob ``/annex/objects/<keyFile>\\n``; the work-tree file
  holds the content when present, else the pointer text (3.2).
"""

from __future__ import annotations

from core.errors import BadKey
from core.repo.key import Key

MAX_POINTER = 32768


def format_pointer(key: Key) -> bytes:
    return b"/annex/objects/" + key.file_name().encode() + b"\n"


def _key_from_line(line: bytes) -> Key | None:
    if b"/annex/objects/" not in line:
        return None
    name = line.rsplit(b"/", 1)[-1]
    try:
        return Key.from_file_name(name.decode("utf-8", "surrogateescape"))
    except (BadKey, UnicodeError):
        return None


def parse_pointer(data: bytes) -> Key | None:
    """The key a pointer file or blob names, or None if it is not a pointer (3.2)."""
    if len(data) > MAX_POINTER:
        return None
    first, nl, rest = data.partition(b"\n")
    if first.endswith(b"\r"):
        first = first[:-1]
    key = _key_from_line(first)
    if key is None:
        return None
    if rest:
        lines = rest.split(b"\n")
        if lines[-1] != b"" or any(b"/annex/" not in ln for ln in lines[:-1]):
            return None
    return key


def link_target(key: Key, file_path: str, hash_lower: bool = False) -> str:
    """The canonical symlink target for ``key`` at repository path ``file_path``."""
    depth = file_path.count("/")
    hashdir = key.hashdir_lower() if hash_lower else key.hashdir_mixed()
    kf = key.file_name()
    return "../" * depth + f".git/annex/objects/{hashdir}/{kf}/{kf}"


def parse_link_target(target: bytes | str) -> Key | None:
    """The key a symlink target names, or None (same first-line rule as pointers)."""
    raw = target.encode("utf-8", "surrogateescape") if isinstance(target, str) else target
    if b"\n" in raw:
        return None
    return _key_from_line(raw)
