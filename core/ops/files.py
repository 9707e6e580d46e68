"""Which work-tree files are annexed, and under which keys.

The answer comes from the git index (what ``git annex`` commands act on): a
symlink entry whose target names a key (locked) or a regular entry whose blob
is a pointer (unlocked).  Work-tree helpers that fill or empty unlocked files
after content arrives or leaves also live here.
"""

from __future__ import annotations

import logging
import os
import shutil
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dulwich.index import Index, IndexEntry, index_entry_from_stat
from dulwich.objects import Blob

from core import gitlock
from core.errors import CoreError, RepoError
from core.repo.key import Key
from core.repo.objects import disk_full_as_error
from core.repo.pointer import format_pointer, parse_link_target, parse_pointer
from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)

MODE_LINK = 0o120000


@dataclass(frozen=True)
class AnnexedFile:
    path: str  # relative to the repository top, '/' separated
    key: Key
    locked: bool


def _entry_key(repo: AnnexRepo, rel: str, entry: object) -> tuple[Key, bool] | None:
    sha = getattr(entry, "sha", None)
    mode = getattr(entry, "mode", None)
    if sha is None or mode is None:
        return None  # conflicted entry
    blob = repo.git.object_store[sha]
    if not isinstance(blob, Blob):
        return None
    locked = mode == MODE_LINK
    key = parse_link_target(blob.data) if locked else parse_pointer(blob.data)
    if key is None:
        if b"/annex/objects/" in blob.data[:1024]:
            _warn_bad_key(rel, blob.data)
        return None
    return key, locked


def index_key(repo: AnnexRepo, rel: str) -> Key | None:
    """The key of the annexed file at ``rel`` in the index, if it is one."""
    index = repo.git.open_index()
    raw = rel.encode("utf-8", "surrogateescape")
    found = _entry_key(repo, rel, index[raw]) if raw in index else None
    return found[0] if found else None


def _warn_bad_key(rel: str, data: bytes) -> None:
    """A link or pointer naming an invalid key: say which file, touch nothing."""
    name = data.split(b"\n", 1)[0].rsplit(b"/", 1)[-1].decode("utf-8", "replace")
    try:
        Key.from_file_name(name)
    except RepoError as e:
        logger.warning("%s: not treated as an annexed file: %s", rel, e)


def _selected(rel: str, prefixes: list[str]) -> bool:
    return not prefixes or any(
        p in ("", ".") or rel == p or rel.startswith(p.rstrip("/") + "/") for p in prefixes
    )


def _prefixes(repo: AnnexRepo, paths: Iterable[str]) -> list[str]:
    top = repo.path.resolve()
    out = []
    for given in paths:
        p = (Path.cwd() / given).resolve()
        if not p.is_relative_to(top) and not (Path.cwd() / given).absolute().is_relative_to(top):
            raise RepoError(f"{given}: outside the repository {repo.path}")
        rel = os.path.relpath(Path.cwd() / given, repo.path)
        out.append("" if rel == "." else rel.replace(os.sep, "/"))
    return out


def annexed_files(repo: AnnexRepo, paths: Iterable[str] = ()) -> Iterator[AnnexedFile]:
    """Annexed files in the index under ``paths`` (all when empty), sorted by path."""
    if repo.bare:
        return
    prefixes = _prefixes(repo, paths)
    index = repo.git.open_index()
    for raw in sorted(index.paths()):
        rel = raw.decode("utf-8", "surrogateescape")
        if not _selected(rel, prefixes):
            continue
        found = _entry_key(repo, rel, index[raw])
        if found:
            yield AnnexedFile(rel, found[0], found[1])


def files_by_key(repo: AnnexRepo) -> dict[Key, list[AnnexedFile]]:
    out: dict[Key, list[AnnexedFile]] = {}
    for f in annexed_files(repo):
        out.setdefault(f.key, []).append(f)
    return out


_Stamp = tuple[int, int, int] | None
_unlocked: weakref.WeakKeyDictionary[AnnexRepo, tuple[_Stamp, dict[Key, list[AnnexedFile]]]] = (
    weakref.WeakKeyDictionary()
)


def _index_stamp(repo: AnnexRepo) -> _Stamp:
    try:
        st = (repo.gitdir / "index").stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def unlocked_files(repo: AnnexRepo, key: Key) -> list[AnnexedFile]:
    """Every unlocked file of the index whose pointer names ``key``.

    A server asks once per content it receives, so the map is kept while the
    index is unchanged.  A stale answer is harmless: populating and
    depopulating check each file's pointer or content first.
    """
    stamp = _index_stamp(repo)
    cached = _unlocked.get(repo)
    if cached is None or cached[0] != stamp:
        by_key: dict[Key, list[AnnexedFile]] = {}
        for f in annexed_files(repo):
            if not f.locked:
                by_key.setdefault(f.key, []).append(f)
        cached = _unlocked[repo] = (stamp, by_key)
    return cached[1].get(key, [])


def follow_content(repo: AnnexRepo, key: Key, present: bool) -> None:
    """Make unlocked files show ``key``'s content after it arrived, or their
    pointer after it left, as git-annex does for every file using the key.

    For receivers (a server's PUT or REMOVE, a local remote's store or
    remove): the content move already happened and is logged, so a work-tree
    failure is a warning, never a failed transfer; a file that cannot be
    updated keeps what it held, and no content is lost.
    """
    files = unlocked_files(repo, key)
    if not files:
        return
    try:
        (populate_unlocked if present else depopulate_unlocked)(repo, files)
    except (CoreError, OSError) as e:
        logger.warning("%s: unlocked files not updated: %s", key, e)
    cached = _unlocked.get(repo)
    if cached is not None:  # our own write changed stat data, not which files use which key
        _unlocked[repo] = (_index_stamp(repo), cached[1])


def _restage_stats(repo: AnnexRepo, rels: list[str]) -> None:
    """Fresh stats for files we just rewrote, in one hold of ``index.lock``."""
    if not rels:
        return
    with gitlock.locked_index(repo.git) as index:
        for rel in rels:
            _restage_stat(index, rel, repo.path / rel)
        index.write()


def _restage_stat(index: Index, rel: str, path: Path) -> None:
    name = os.fsencode(rel)
    entry = index[name] if name in index else None
    if isinstance(entry, IndexEntry):
        index[os.fsencode(rel)] = index_entry_from_stat(path.lstat(), entry.sha, entry.mode)


def _temp_beside(dest: Path) -> Path:
    tmp = dest.with_name(f".{dest.name}.annexsync-tmp")
    tmp.unlink(missing_ok=True)
    return tmp


def install_object(repo: AnnexRepo, obj: Path, dest: Path, mode: int) -> None:
    """Replace ``dest`` atomically with the object's content (3.2).

    A copy, or a hard link with annex.thin; ``mode`` is the file's permission bits.
    """
    tmp = _temp_beside(dest)
    try:
        with disk_full_as_error(dest.parent):
            if repo.config.thin:
                os.link(obj, tmp)
            else:
                shutil.copyfile(obj, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half copy left in the work tree
        raise


def _install_pointer(key: Key, dest: Path) -> None:
    tmp = _temp_beside(dest)
    tmp.write_bytes(format_pointer(key))
    os.chmod(tmp, dest.stat().st_mode & 0o777)
    os.replace(tmp, dest)


def populate_unlocked(repo: AnnexRepo, files: Iterable[AnnexedFile]) -> None:
    """Put content into unlocked files that hold only their pointer (after get)."""
    filled: list[str] = []
    for f in files:
        path = repo.path / f.path
        if f.locked or path.is_symlink() or not path.is_file():
            continue
        src = repo.objects.find(f.key)
        if src is None or path.stat().st_size > 32768 or parse_pointer(path.read_bytes()) != f.key:
            continue  # no content, or the file holds something else: leave it alone
        install_object(repo, src, path, path.stat().st_mode & 0o777)
        filled.append(f.path)
    _restage_stats(repo, filled)


def depopulate_unlocked(repo: AnnexRepo, files: Iterable[AnnexedFile]) -> None:
    """Turn unlocked files back into pointers after their content was dropped.

    Only files that still hold exactly the dropped content are changed; a file
    edited since keeps its edit.
    """
    from core.ops.add import hash_file

    changed: list[str] = []
    for f in files:
        path = repo.path / f.path
        if f.locked or path.is_symlink() or not path.is_file():
            continue
        if f.key.size is not None and path.stat().st_size != f.key.size:
            continue
        if not f.key.verifiable:
            continue
        got = hash_file(path, f.key.backend, f.path, 64, 64)
        if got.expected_digest() != f.key.expected_digest():
            continue
        _install_pointer(f.key, path)
        changed.append(f.path)
    _restage_stats(repo, changed)
