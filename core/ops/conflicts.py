"""Resolving merge conflicts on annexed files with ``.variant-XXXX`` files.

Spec: repository-format.md 8.4 (rules and names), 3.1/3.2 (how the results
look), 12.9 (the interop check).

Theory of operation
-------------------
``git merge`` (run by ``core.gitops`` with the annex filter off) leaves
conflicted paths as index stages 2 (ours) and 3 (theirs).  Each side is
*annexed* when it is a symlink or a pointer blob naming a key.  The decision is
a pure function of the two sides (``plan``):

* both annexed, keys differ: the path goes; each side is kept as
  ``variant_name(path, key)`` -- a symlink when that side was locked, a pointer
  with that side's mode when unlocked;
* both annexed, same key: the path stays, a symlink when both were locked,
  else a pointer (an executable bit on either side is kept);
* one side annexed: that side becomes a variant, the other side keeps the
  path as it was on its branch (a deleted side or a directory leaves no entry
  at the path itself);
* neither annexed: no plan; the conflict stays for the user (MergeConflict).

Because the names depend only on keys, two repositories resolving the same
conflict build the same tree, and their next merge is clean (8.4).

``resolve`` applies the plans to the index (dulwich, stage 0 entries with
fresh stat) and the work tree (symlinks, pointer text, or the content for an
unlocked file whose object is present), removes ``path~...`` leftovers git
wrote that name the involved keys, and commits the merge as
``git-annex automatic merge conflict fix`` when nothing is left unresolved.
It lives here, next to the plan, so no other module writes conflict results.
``place_unlocked`` is shared with sync's post-merge work-tree fix.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dulwich.index import ConflictedIndexEntry, Index, IndexEntry, index_entry_from_stat
from dulwich.objects import Blob, ObjectID

from core import gitlock, gitops
from core.errors import MergeConflict
from core.ops.files import index_key, install_object
from core.repo.key import Key
from core.repo.pointer import format_pointer, link_target, parse_link_target, parse_pointer
from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)

VARIANT_MARKER = ".variant-"
FIX_MESSAGE = "git-annex automatic merge conflict fix"
MODE_LINK = 0o120000
MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_TREE = 0o040000


# --- the pure part ------------------------------------------------------------


def variant_name(path: str, key: Key) -> str:
    """``dir/name.variant-XXXX.ext`` for ``dir/name.ext`` (8.4).

    XXXX is the first four hex digits of md5 of the serialized key; when the
    path already holds a variant marker, the whole keyFile is used instead.
    The extension is everything from the last dot of the file name, even a
    leading one.  A name that is all extension (``.bashrc``) has an empty
    stem, and git-annex then glues the marker to the directory instead:
    ``sub/.bashrc`` -> ``sub.variant-XXXX.bashrc``, ``.bashrc`` ->
    ``..variant-XXXX.bashrc`` (live, git-annex 10.20261026; the spec's
    wording does not cover this case).
    """
    if VARIANT_MARKER in path:
        tag = key.file_name()
    else:
        tag = hashlib.md5(str(key).encode("utf-8", "surrogateescape")).hexdigest()[:4]
    directory, name = posixpath.split(path)
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    else:
        ext = "." + ext
    base = posixpath.join(directory, stem) if stem else (directory or ".")
    return f"{base}{VARIANT_MARKER}{tag}{ext}"


@dataclass(frozen=True)
class Side:
    """One side of a conflicted path, as its index stage holds it."""

    mode: int
    sha: bytes
    key: Key | None  # the key when this side is an annexed file

    @property
    def locked(self) -> bool:
        return self.mode == MODE_LINK


@dataclass(frozen=True)
class Placement:
    """An index entry (and work-tree file) the resolution creates."""

    path: str
    mode: int
    data: bytes  # blob: link target or pointer text or plain content
    key: Key | None


@dataclass(frozen=True)
class Plan:
    """How one conflicted path is resolved."""

    path: str
    keep: Side | None  # the non-annexed side grafted at the path (None: nothing)
    place: tuple[Placement, ...]
    keys: frozenset[Key]


def original_names(variant: str) -> tuple[str, ...]:
    """Every path ``variant`` may stand for, the plain reading first.

    A name that is all extension has its marker glued to the directory
    (``variant_name``), so ``sub.variant-XXXX.hidden`` may be ``sub.hidden``
    or ``sub/.hidden``, and ``..variant-XXXX.bashrc`` ``..bashrc`` or
    ``.bashrc``.  Which one it is only the history can tell
    (``core.daemon.jobs.find_conflicts`` looks).
    """
    plain = original_name(variant)
    d, _, name = variant.rpartition("/")
    stem, marker, rest = name.partition(VARIANT_MARKER)
    if not marker or not stem or "." not in rest:
        return (plain,)
    ext = rest[rest.index(".") :]
    glued = ext if stem == "." else posixpath.join(stem, ext)
    other = posixpath.join(d, glued) if d else glued
    return (plain, other) if other != plain else (plain,)


def original_name(variant: str) -> str:
    """The path a variant stands for: the inverse of ``variant_name``.

    ``dir/a.variant-1234.txt`` -> ``dir/a.txt``.  Not exact for names that are
    all extension: ``sub/.hidden`` and ``sub.hidden`` both give
    ``sub.variant-XXXX.hidden`` (and ``.bashrc``/``..bashrc`` both give
    ``..variant-XXXX.bashrc``); the plain reading is returned.
    """
    d, _, name = variant.rpartition("/")
    stem, marker, rest = name.partition(VARIANT_MARKER)
    if not marker:
        return variant
    ext = rest[rest.index("."):] if "." in rest else ""
    base = stem + ext
    if not stem:
        return f"{d}/{ext}" if d else ext
    return f"{d}/{base}" if d else base


def _annexed(path: str, side: Side, hash_lower: bool) -> Placement:
    assert side.key is not None
    if side.locked:
        return Placement(path, MODE_LINK, link_target(side.key, path, hash_lower).encode(), side.key)
    return Placement(path, side.mode, format_pointer(side.key), side.key)


def plan(path: str, ours: Side | None, theirs: Side | None, hash_lower: bool = False) -> Plan | None:
    """The resolution of one conflicted path, or None when neither side is annexed (8.4)."""
    ko = ours.key if ours else None
    kt = theirs.key if theirs else None
    if ko is None and kt is None:
        return None
    keys = frozenset(k for k in (ko, kt) if k is not None)
    if ours and theirs and ko is not None and ko == kt:
        if ours.locked and theirs.locked:
            return Plan(path, None, (_annexed(path, ours, hash_lower),), keys)
        mode = MODE_EXEC if MODE_EXEC in (ours.mode, theirs.mode) else MODE_FILE
        return Plan(path, None, (Placement(path, mode, format_pointer(ko), ko),), keys)
    place = tuple(
        _annexed(variant_name(path, s.key), s, hash_lower)
        for s in (ours, theirs)
        if s is not None and s.key is not None
    )
    keep = next((s for s in (ours, theirs) if s is not None and s.key is None), None)
    if keep is not None:
        place += (Placement(path, keep.mode, b"", None),)
    return Plan(path, keep, place, keys)


def side_key(mode: int, data: bytes) -> Key | None:
    """The key of an annexed blob: a symlink to an object, or a pointer file."""
    if mode == MODE_LINK:
        return parse_link_target(data)
    if stat.S_ISREG(mode):
        return parse_pointer(data)
    return None


# --- applying it --------------------------------------------------------------


def resolve(repo: AnnexRepo, paths: Iterable[str]) -> list[str]:
    """Resolve the annexed conflicts among ``paths``; commit if none remain.

    Returns the paths resolved.

    Raises:
        MergeConflict: some conflicts have no annexed side; they are left in
            the index and work tree exactly as git left them (the annexed
            ones are resolved), and no commit is made.
    """
    with gitlock.locked_index(repo.git) as index:
        sides = {p: s for p in paths if (s := _sides(repo, index, p)) is not None}
        plans: list[tuple[Plan, tuple[str, ...]]] = []
        unresolved: list[str] = []
        for path, (ours, theirs, extra) in pair_renamed(sides).items():
            p = plan(path, ours, theirs, repo.config.hash_lower)
            if p is None:
                unresolved += [path, *extra]
            else:
                plans.append((p, extra))
        touched: list[bytes] = []
        for p, extra in plans:
            touched += _apply(repo, index, p, extra)
        _clean_cruft(repo, index, [p for p, _ in plans])
        gitops.settle_index(index, repo.path, touched)
    if unresolved:
        raise MergeConflict(sorted(unresolved))
    _commit_fix(repo)
    return [p.path for p, _ in plans]


Sides = tuple[Side | None, Side | None]


def pair_renamed(
    sides: dict[str, Sides],
) -> dict[str, tuple[Side | None, Side | None, tuple[str, ...]]]:
    """Join the halves git split apart: with a file on one side and a symlink
    on the other ("distinct types"), git records ours as ``P~HEAD`` (stage 2
    only) and theirs at ``P`` (stage 3 only), or the reverse.  git-annex
    resolves them as one conflict on ``P``; so do we.
    """
    out: dict[str, tuple[Side | None, Side | None, tuple[str, ...]]] = {}
    joined: set[str] = set()
    for path in sorted(sides):
        base = _split_half(path, sides)
        if base is None:
            continue
        (o1, t1), (o2, t2) = sides[base], sides[path]
        out[base] = (o1 or o2, t1 or t2, (path,))
        joined |= {base, path}
    for path, (ours, theirs) in sides.items():
        if path not in joined:
            out[path] = (ours, theirs, ())
    return out


def _split_half(path: str, sides: dict[str, Sides]) -> str | None:
    """The base path ``P`` when ``path`` is ``P~<label>`` and the halves complement."""
    ours, theirs = sides[path]
    at = path.find("~")
    while at > 0:
        base = path[:at]
        if base in sides:
            bo, bt = sides[base]
            if (ours is None) != (theirs is None) and (bo is None) == (ours is not None) \
                    and (bt is None) == (theirs is not None):
                return base
        at = path.find("~", at + 1)
    return None


def _sides(repo: AnnexRepo, index: Index, path: str) -> Sides | None:
    name = path.encode("utf-8", "surrogateescape")
    entry = index[name] if name in index else None
    if not isinstance(entry, ConflictedIndexEntry):
        return None
    return _side(repo, entry.this), _side(repo, entry.other)


def _side(repo: AnnexRepo, entry: IndexEntry | None) -> Side | None:
    if entry is None:
        return None
    obj = repo.git.object_store[entry.sha]
    key = side_key(entry.mode, obj.data) if isinstance(obj, Blob) else None
    return Side(entry.mode, bytes(entry.sha), key)


def _apply(repo: AnnexRepo, index: Index, p: Plan, extra: tuple[str, ...]) -> list[bytes]:
    for path in (p.path, *extra):
        name = path.encode("utf-8", "surrogateescape")
        if name in index:
            del index[name]
        _remove_file(repo.path / path)
    touched = []
    for placement in p.place:
        if placement.key is None:
            touched += _graft(repo, index, placement, p.keep)
        else:
            touched.append(_place_annexed(repo, index, placement))
    logger.info("resolved merge conflict on %s", p.path)
    return touched


def _place_annexed(repo: AnnexRepo, index: Index, pl: Placement) -> bytes:
    assert pl.key is not None
    name = pl.path.encode("utf-8", "surrogateescape")
    dest = repo.path / pl.path
    _remove_file(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if pl.mode == MODE_LINK:
        os.symlink(pl.data.decode("utf-8", "surrogateescape"), dest)
        blob = _store_blob(repo, pl.data)
        index[name] = index_entry_from_stat(dest.lstat(), blob, MODE_LINK)
        return name
    blob = _store_blob(repo, pl.data)
    dest.write_bytes(pl.data)
    place_unlocked(repo, index, pl.path, pl.key, pl.mode, blob)
    return name


def _graft(repo: AnnexRepo, index: Index, pl: Placement, keep: Side | None) -> list[bytes]:
    """Put the non-annexed side back at the path, as its branch had it."""
    if keep is None or keep.mode == MODE_TREE:
        return []
    name = pl.path.encode("utf-8", "surrogateescape")
    dest = repo.path / pl.path
    obj = repo.git.object_store[ObjectID(keep.sha)]
    assert isinstance(obj, Blob)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if keep.mode == MODE_LINK:
        os.symlink(obj.data.decode("utf-8", "surrogateescape"), dest)
    else:
        dest.write_bytes(obj.data)
        dest.chmod(0o755 if keep.mode == MODE_EXEC else 0o644)
    index[name] = index_entry_from_stat(dest.lstat(), keep.sha, keep.mode)
    return [name]


def _store_blob(repo: AnnexRepo, data: bytes) -> bytes:
    blob = Blob.from_string(data)
    gitlock.add_object(repo.git, blob)
    return bytes(blob.id)


def place_unlocked(
    repo: AnnexRepo, index: Index, rel: str, key: Key, mode: int, blob: bytes
) -> None:
    """Fill an unlocked file whose object is present, and stage it with fresh stat.

    The work-tree file is replaced atomically: a copy of the object, or a hard
    link with annex.thin (3.2).  Without the object the pointer text stays.
    """
    dest = repo.path / rel
    obj = repo.objects.find(key)
    if obj is not None:
        install_object(repo, obj, dest, 0o755 if mode == MODE_EXEC else 0o644)
    name = rel.encode("utf-8", "surrogateescape")
    index[name] = index_entry_from_stat(dest.lstat(), blob, mode)


def _remove_file(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()


def _clean_cruft(repo: AnnexRepo, index: Index, plans: list[Plan]) -> None:
    """Delete untracked ``path~ours``-style files git left that name our keys."""
    for p in plans:
        dest = repo.path / p.path
        if not dest.parent.is_dir():
            continue
        for cand in dest.parent.glob(_glob_escape(dest.name) + "~*"):
            rel = cand.relative_to(repo.path).as_posix().encode("utf-8", "surrogateescape")
            if rel not in index and _file_key(cand) in p.keys:
                cand.unlink()


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _file_key(path: Path) -> Key | None:
    if path.is_symlink():
        return parse_link_target(os.readlink(path))
    if path.is_file() and path.stat().st_size <= 32768:
        return parse_pointer(path.read_bytes())
    return None


def _commit_fix(repo: AnnexRepo) -> None:
    heads = gitops.merge_heads(repo.gitdir)
    gitops.commit_index(repo.git, FIX_MESSAGE, heads)
    gitops.clear_merge_state(repo.gitdir)


__all__ = [
    "FIX_MESSAGE",
    "Placement",
    "Plan",
    "Side",
    "place_unlocked",
    "pair_renamed",
    "plan",
    "resolve",
    "side_key",
    "variant_name",
]


THIS_DEVICE = "this device"


def version_origins(repo: AnnexRepo, variants: Iterable[str],
                    remote_names: dict[str, str]) -> tuple[str, ...]:  # fmt: skip
    """For each variant, where its version came from, in the person's words.

    A variant's name carries a hash of its key, not the device (8.4), so the
    origin is read from the location log (5.5): the repository that first
    recorded having that content is the one where the version was written.
    It is named ``THIS_DEVICE``, by the git remote (``remote_names``: uuid to
    name), else by its description; "" when unknown: content never logged, or
    the same first repository for two versions.  One repository wrote only
    one of them, and which is not known yet: the other's log has not arrived,
    only the line of a repository that received its content (a remote that
    uploaded it here logs us), so a name would be wrong for one of them.
    """
    descriptions = repo.state.descriptions()
    firsts = [_first_location(repo, v) for v in variants]
    out = []
    for uuid in firsts:
        if uuid is None or firsts.count(uuid) > 1:
            out.append("")
        elif uuid == repo.uuid:
            out.append(THIS_DEVICE)
        else:
            out.append(remote_names.get(uuid) or descriptions.get(uuid) or uuid)
    return tuple(out)


def _first_location(repo: AnnexRepo, variant: str) -> str | None:
    key = index_key(repo, variant)
    return repo.state.first_location(key) if key else None
