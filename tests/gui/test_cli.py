"""``annexsync`` with no command: the tray app under X, the daemon without a display."""

from __future__ import annotations

import os  # noqa: F401 - used by the requires_x condition
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.gui.conftest import requires_x

ROOT = Path(__file__).resolve().parents[2]


def _spawn(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:  # noqa: D103
    return subprocess.Popen([sys.executable, "-m", "core.cli", "--config-dir", str(config)],
                            cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _read_until(p: subprocess.Popen[bytes], needle: str, timeout: float) -> str:
    assert p.stderr is not None
    out = b""
    deadline = time.monotonic() + timeout
    while needle not in out.decode(errors="replace"):
        if time.monotonic() > deadline or p.poll() is not None:
            break
        if select.select([p.stderr], [], [], 0.2)[0]:
            out += os.read(p.stderr.fileno(), 4096)
    return out.decode(errors="replace")


def _stop(p: subprocess.Popen[bytes]) -> int:
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail("did not stop on SIGTERM")


@pytest.mark.tray
@requires_x
def test_no_command_starts_the_tray_app_and_sigterm_quits(tmp_path: Path) -> None:
    env = {**os.environ, "ANNEXSYNC_STARTUP_TRACE": "1"}
    env.pop("QT_QPA_PLATFORM", None)
    p = _spawn(tmp_path / "cfg", env)
    try:
        out = _read_until(p, "tray-visible", 20)
        assert "tray-visible" in out, out
    finally:
        code = _stop(p)
    assert code == 0


def test_no_display_runs_the_daemon(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    p = _spawn(tmp_path / "cfg", env)
    try:
        out = _read_until(p, "running the daemon instead", 20)
        assert "no display" in out and "running the daemon instead" in out, out
        time.sleep(0.5)
        assert p.poll() is None, "the daemon keeps running"
    finally:
        _stop(p)
    assert "PySide6" not in out


# --- issue 19: the command line's own manners -----------------------------------------


def _cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, **kw)  # type: ignore[call-overload]


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    p = _cli("--version")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"annexsync {version('annexsync')}"


def test_help_says_what_starts_the_tray_app() -> None:
    p = _cli("--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    assert "With no COMMAND, annexsync starts the tray app" in text
    assert "No COMMAND below starts the tray app" in text


def test_status_into_a_closed_pipe_ends_without_a_traceback(tmp_path: Path) -> None:
    """``annexsync status | head``: the reader is gone before the output is written.

    Short output stays in Python's buffer until the command's end, so the write
    that meets the closed pipe is the last flush: it must happen where the CLI
    catches BrokenPipeError, not at interpreter exit ("Exception ignored ...
    BrokenPipeError", exit 120).  The pipe's read end is closed before the
    process starts, so the outcome does not depend on timing; PYTHONUNBUFFERED
    (set where the tests run) would write, and fail, inside the command instead.
    """
    import json

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "settings.json").write_text(json.dumps({"repositories": [str(tmp_path / "gone")]}))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a user runs it
    r, w = os.pipe()
    os.close(r)  # as `head` that has already exited
    try:
        p = subprocess.run([sys.executable, "-m", "core.cli", "--config-dir", str(cfg), "status"],
                           stdout=w, stderr=subprocess.PIPE, cwd=ROOT, text=True, timeout=60,
                           env={**env, "PYTHONPATH": str(ROOT)})  # fmt: skip
    finally:
        os.close(w)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
    assert p.returncode == 141, (p.returncode, p.stderr)  # as git-annex ends on SIGPIPE


@pytest.mark.tray
@requires_x
def test_launching_the_gui_while_the_daemon_runs_says_so(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    daemon = subprocess.Popen([sys.executable, "-m", "core.cli", "--config-dir", str(cfg),
                               "daemon"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while '"running": true' not in _cli("--config-dir", str(cfg), "status", "--json").stdout:
            assert time.monotonic() < deadline and daemon.poll() is None, "daemon up"
            time.sleep(0.2)
        gui_env = {k: v for k, v in env.items() if k != "QT_QPA_PLATFORM"}
        gui = _spawn(cfg, gui_env)
        try:
            out = _read_until(gui, "background service", 20)
            assert "already runs here as a background service (`annexsync daemon`)" in out, out
            found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name",
                                    "^annexsync$"], capture_output=True, text=True, timeout=15)
            assert found.stdout.strip(), "a window tells the person too"
        finally:
            gui.kill()
            gui.wait(10)
    finally:
        _stop(daemon)
