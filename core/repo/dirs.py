"""Directories under ``<gitdir>/annex``, never the git directory itself.

``mkdir -p`` on a path inside a repository whose folder vanished (a drive
unplugged, a folder moved) would recreate a skeleton of it -- on a mount
point, a directory tree the returning drive then hides -- and the daemon
would take it for the folder being back.  ``annex_dirs`` creates only the
components from ``annex`` down: when the git directory is gone the first
``mkdir`` fails with FileNotFoundError, and the caller's job fails instead.
"""

from __future__ import annotations

import os
from pathlib import Path


def annex_dirs(path: Path) -> bool:
    """``path.mkdir(parents=True, exist_ok=True)`` for a path below ``<gitdir>/annex``,
    creating nothing above ``annex``; True when ``path`` itself was made here.

    Raises:
        FileNotFoundError: the git directory is gone.
        ValueError: ``path`` has no ``annex`` component.
    """
    parts = path.parts
    if "annex" not in parts:
        raise ValueError(f"{path} is not inside a git-annex directory")
    if os.path.isdir(path):  # mostly there already: one stat, no failing mkdir
        return False
    return _make(path, len(parts) - parts[::-1].index("annex"))


def _make(path: Path, annex_depth: int) -> bool:
    """mkdir ``path``, and first its missing parents up to ``annex`` (whose
    own parts count is ``annex_depth``): upwards only as far as needed, so a
    new object directory costs one mkdir per missing level.  True when this
    call made ``path`` (not another writer meanwhile)."""
    try:
        path.mkdir()
        return True
    except FileExistsError:
        return False
    except FileNotFoundError:
        if len(path.parts) <= annex_depth:
            raise  # ``annex``'s parent, the git directory, is gone
    _make(path.parent, annex_depth)
    try:
        path.mkdir()
    except FileExistsError:  # made meanwhile by another writer
        return False
    return True
