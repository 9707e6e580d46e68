"""Directories under ``<gitdir>/annex``, never the git directory itself.

``mkdir -p`` on a path inside a repository whose folder vanished (a drive
unplugged, a folder moved) would recreate a skeleton of it -- on a mount
point, a directory tree the returning drive then hides -- and the daemon
would take it for the folder being back.  ``annex_dirs`` creates only the
components from ``annex`` down: when the git directory is gone the first
``mkdir`` fails with FileNotFoundError, and the caller's job fails instead.
"""

from __future__ import annotations

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
    top = len(parts) - parts[::-1].index("annex")  # components up to ``annex``
    missing: list[Path] = []
    here = path
    while True:  # up from the deepest: mostly one system call, one per missing level
        try:
            here.mkdir()
        except FileExistsError:
            if here == path:
                return False
            break
        except FileNotFoundError:
            if len(here.parts) <= top:  # ``annex``'s parent, the git directory, is gone
                raise
            missing.append(here)
            here = here.parent
            continue
        break
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:  # made meanwhile by another writer
            if d == path:
                return False
    return True
