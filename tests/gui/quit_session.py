"""A whole GUI session in one process, ended by *Quit* (issue 19: no crash on quit).

    python -X dev -m tests.gui.quit_session WORKDIR

Run by ``tests/gui/test_quit.py`` (10 times) and ``bench/gui_quit.py`` (50
times).  It goes through ``gui.app.main`` as ``annexsync`` does: the real
core over a folder A whose remote B (a clone) holds a different version of
``seed.txt``, so the first sync makes a conflict.  The session opens every
window (main window and each tab, settings and each page, the add-folder
wizard, the conflict resolver, the About dialog), waits for a transfer to B
to finish, resolves the conflict, redraws as a long session would, then quits
from the tray menu.  After
``main`` returned, a forced ``gc.collect()`` runs and the interpreter ends
on its own: no ``os._exit``.  Exit status 0 means the session worked and
nothing crashed at shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BOUND = 60.0
# A day of status updates at a few a second, compressed: each redraw makes ~100 Qt calls,
# enough to bring out a binding that loses a reference per call (the 6.12.0 defect).
LONG_SESSION_REDRAWS = 2000


def _sh(cwd: Path, *cmd: str) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=120)


def _cli(cwd: Path, *args: str) -> None:
    _sh(cwd, sys.executable, "-m", "core.cli", *args)


def prepare(work: Path) -> tuple[Path, Path]:
    """Folder A (synced) and its remote B, whose ``seed.txt`` differs from A's."""
    a, b = work / "A", work / "B"
    a.mkdir(parents=True)
    _cli(a, "init", "A")
    (a / "seed.txt").write_text("seed\n")
    _cli(a, "add", ".")
    _sh(a, "git", "commit", "-qm", "seed")
    _sh(work, "git", "clone", "-q", str(a), str(b))
    _cli(b, "init", "B")
    for repo, text in ((b, "from B\n"), (a, "from A\n")):
        (repo / "seed.txt").unlink()  # an annexed file is a symlink to read-only content
        (repo / "seed.txt").write_text(text)
        _cli(repo, "add", "seed.txt")
        _sh(repo, "git", "commit", "-qm", text.strip())
    _sh(a, "git", "remote", "add", "b", str(b))
    return a, b


async def until(cond: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def session(app: Any, folder: Path) -> None:
    """Open everything, transfer, resolve, quit."""
    try:
        await _session(app, folder)
    except BaseException as e:
        print(f"quit_session: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        app.failed_session = True
        raise
    finally:
        app.tray.rebuild_menu()
        app.tray.named["quit"].trigger()


async def _session(app: Any, folder: Path) -> None:
    await until(lambda: app.bridge.status.repos, "folder in status")
    win = app.open_window()
    for i in range(win.tabs.count()):
        win.tabs.setCurrentIndex(i)
        await asyncio.sleep(0.05)
    dlg = app.open_settings()
    for i in range(dlg.tabs.count()):
        dlg.tabs.setCurrentIndex(i)
        await asyncio.sleep(0.05)
    dlg.close()
    about = getattr(app, "open_about", None)
    if about is not None:
        about().close()
    adder = getattr(app, "open_add_folder", None) or app.open_wizard
    adder().close()
    (folder / "video.bin").write_bytes(os.urandom(400_000))
    await until(lambda: any(t.state == "done" and t.path == "video.bin"
                            for r in app.bridge.status.repos for t in r.transfers),
                "transfer of video.bin done")
    await until(lambda: app.bridge.status.repos[0].conflicts, "conflict found")
    conflict = app.bridge.status.repos[0].conflicts[0]
    resolver = app.resolve_conflict(conflict)
    resolver.resolve(None)  # keep both: no confirmation question
    await until(lambda: not app.bridge.status.repos[0].conflicts, "conflict resolved")
    for _ in range(LONG_SESSION_REDRAWS):  # a long session's redraws, compressed
        win.show_status(app.bridge.status)
        app.tray.update(app.bridge.status)
    await asyncio.sleep(0.2)


def main(argv: list[str]) -> int:
    work = Path(argv[1])
    os.environ.setdefault("HOME", str(work))
    folder, _ = prepare(work)
    cfg = work / "config"
    from core.settings import Settings, save_settings

    save_settings(cfg, Settings(repositories=(str(folder),)))
    from gui.app import main as gui_main

    tasks: list[asyncio.Task[None]] = []
    failed: list[Any] = []

    def started(app: Any) -> None:
        failed.append(app)
        tasks.append(asyncio.get_running_loop().create_task(session(app, folder)))

    code = gui_main(cfg, on_started=started)
    ok = bool(tasks) and tasks[0].done() and not getattr(failed[0], "failed_session", False)
    tasks.clear()
    failed.clear()
    gc.collect()  # forced, after the app and QApplication are gone (issue 19)
    print(f"quit_session: main returned {code}, session {'ok' if ok else 'failed'}",
          file=sys.stderr, flush=True)
    return code if ok else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
