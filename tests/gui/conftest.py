"""GUI test fixtures: a qasync loop on pytest-qt's QApplication, a tray host, real cores.

Pattern A of test-environment.md section 3: tests are plain functions; every
asyncio step runs through ``qloop.run_until_complete`` so Qt and asyncio both
turn (never ``qtbot.waitUntil`` while the loop is not running: failure F1).
``until`` awaits a condition on the running loop.

The tray host (trayer, an XEmbed tray) runs for the session under the Xvfb
display pytest-xvfb provides; tests marked ``tray`` skip only when there is no
X display (``QT_QPA_PLATFORM=offscreen`` or no ``DISPLAY``).

``make_core`` builds a real ``core.api.Core`` over a temporary config dir and
runs it on the loop; ``make_app`` wraps one in the tray app's composition root.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

T = TypeVar("T")

def no_x() -> bool:
    """No X display: offscreen Qt, or no DISPLAY (checked when a test runs: pytest-xvfb sets it late)."""
    return os.environ.get("QT_QPA_PLATFORM") == "offscreen" or not os.environ.get("DISPLAY")


requires_x = pytest.mark.skipif(
    "os.environ.get('QT_QPA_PLATFORM') == 'offscreen' or not os.environ.get('DISPLAY')",
    reason="needs an X display (Xvfb) with a tray host")


async def until(cond: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Await ``cond()`` becoming true while Qt and asyncio keep running."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s: {what or cond}")
        await asyncio.sleep(0.02)


class TestLoop(qasync.QEventLoop):
    """A qasync loop that stays asyncio's *running* loop between ``run_until_complete`` calls.

    Qt events are also processed outside the loop's own runs -- qasync's
    ``run_until_complete`` pumps once more after ``run_forever`` returned, and
    pytest-qt pumps between test phases -- and each pump can step the core's
    tasks, which then find no running loop (failure F1 of test-environment.md).
    The core runs on this loop for the whole test, so the loop stays registered.
    """

    def run_until_complete(self, future: Any) -> Any:
        # qasync's own version, minus the extra pump after the loop stopped.
        fut = asyncio.ensure_future(future, loop=self)
        fut.add_done_callback(lambda _f: self.stop())
        try:
            self.run_forever()
        finally:
            asyncio.events._set_running_loop(self)
        if not fut.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return fut.result()

    def close(self) -> None:
        asyncio.events._set_running_loop(None)
        super().close()


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    qapp.setQuitOnLastWindowClosed(False)
    loop = TestLoop(qapp, already_running=False)
    asyncio.set_event_loop(loop)
    asyncio.events._set_running_loop(loop)
    yield loop
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def run(qloop: qasync.QEventLoop) -> Callable[[Awaitable[T]], T]:
    """``run(coro)``: run an awaitable to completion on the qasync loop."""

    def _run(aw: Awaitable[T]) -> T:
        return qloop.run_until_complete(aw)

    return _run


@pytest.fixture
def wait(run: Callable[[Awaitable[Any]], Any]) -> Callable[..., None]:
    """``wait(cond, timeout=..., what=...)``: spin the loop until ``cond()`` holds."""

    def _wait(cond: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
        run(until(cond, timeout, what))

    return _wait


@pytest.fixture(scope="session", autouse=True)
def tray_host() -> Iterator[subprocess.Popen[bytes] | None]:
    if no_x() or not shutil.which("trayer"):
        yield None
        return
    p = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
         "--height", "24", "--SetDockType", "true"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["xdotool", "search", "--sync", "--classname", "trayer"], timeout=10,
                   stdout=subprocess.DEVNULL, check=False)
    yield p
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


@pytest.fixture
def config_root(tmp_path: Path) -> Path:
    root = tmp_path / "instances"
    root.mkdir()
    return root


@pytest.fixture
def make_core(qloop: qasync.QEventLoop, config_root: Path) -> Iterator[Callable[..., Any]]:
    """``make_core(name="a")``: a real Core over ``config_root/name``, running on the loop."""
    from core.api import Core

    running: list[tuple[Any, asyncio.Task[None]]] = []

    def _make(name: str = "a", start: bool = True, **kw: Any) -> Any:
        kw.setdefault("timings", FAST)
        kw.setdefault("net_probe", lambda: True)
        core = Core(config_root / name, **kw)
        if start:
            task = qloop.create_task(core.run(), name=f"core-{name}")
            running.append((core, task))
        return core

    yield _make
    for core, task in reversed(running):
        if not task.done():
            qloop.run_until_complete(asyncio.wait_for(core.stop(), 20))
            qloop.run_until_complete(asyncio.wait_for(asyncio.shield(task), 20))
        elif not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def _fast_timings() -> Any:
    from core.daemon.batching import BatchRules
    from core.daemon.timings import Timings

    return Timings(batch=BatchRules(quiet=0.2, window=0.2), push_delay=0.2, probe_interval=1.0,
                   idle_tick=1.0, retry_base=0.2, stop_grace=5.0)


FAST = _fast_timings()


class Opened(list[str]):
    """Paths the app asked the desktop to open (instead of launching a file manager)."""


@pytest.fixture
def make_app(qloop: qasync.QEventLoop, make_core: Callable[..., Any],
             config_root: Path) -> Iterator[Callable[..., Any]]:
    """``make_app(name="a")``: the tray app's composition root over a running real Core."""
    from gui.app import App

    apps: list[Any] = []

    def _make(name: str = "a", core: Any = None, show: bool = True) -> Any:
        core = core or make_core(name)
        opened = Opened()
        app = App(core, config_root / name, opener=opened.append)
        app.opened = opened  # type: ignore[attr-defined]
        if show:
            app.start()
        apps.append(app)
        return app

    _make.make_core = make_core  # type: ignore[attr-defined]
    yield _make
    for app in apps:
        qloop.run_until_complete(app.aclose())
    # Delete the Qt objects now, while the loop and the cores still exist, not at a random GC.
    apps.clear()
    gc.collect()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def make_repo(path: Path, files: dict[str, bytes | str] | None = None) -> Path:
    """A git-annex repository made by annexsync's own command line, with files added."""
    import sys

    path.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "core.cli"]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([*cli, "init", "test repo"], cwd=path, check=True, env=env, capture_output=True)
    for rel, data in (files or {}).items():
        f = path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data.encode() if isinstance(data, str) else data)
    if files:
        subprocess.run([*cli, "add", "."], cwd=path, check=True, env=env, capture_output=True)
    return path


def xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=10)
