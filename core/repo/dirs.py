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


def annex_dirs(path: Path) -> None:
    """``path.mkdir(parents=True, exist_ok=True)`` for a path below ``<gitdir>/annex``,
    creating nothing above ``annex``.

    Raises:
        FileNotFoundError: the git directory is gone.
        ValueError: ``path`` has no ``annex`` component.
    """
    parts = path.parts
    if "annex" not in parts:
        raise ValueError(f"{path} is not inside a git-annex directory")
    try:  # mostly only the last one is missing, or none: one system call
        path.mkdir()
        return
    except FileExistsError:
        return
    except FileNotFoundError:
        pass
    top = len(parts) - 1 - parts[::-1].index("annex")
    here = Path(*parts[:top])
    for part in parts[top:]:
        here = here / part
        try:
            here.mkdir()
        except FileExistsError:
            pass
