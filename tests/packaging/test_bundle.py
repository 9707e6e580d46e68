"""The bundle as a person gets it: no Python, no venv, only what packaging/build.sh made.

Slow (the first run builds the bundle, minutes): marked ``slow`` so CI runs it in
its own bounded step; later runs reuse the cached build.  The environment given
to the bundle has no venv, no PYTHONPATH and only the system's PATH.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.gui.conftest import requires_x
from tests.packaging.conftest import Built

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def plain_env(home: Path, **extra: str) -> dict[str, str]:
    """What a desktop session gives a program: no developer's Python anywhere."""
    keep = ("DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS", "LANG", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    return {**env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"), "PATH": SYSTEM_PATH,
            "GIT_CONFIG_NOSYSTEM": "1", **extra}


def bundle(built: Built, *args: str, env: dict[str, str], cmd: str = "annexsync",
           stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(built.tree / "bin" / cmd), *args], env=env, input=stdin, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def wait_for_line(proc: subprocess.Popen[bytes], prefix: str, timeout: float) -> str:
    assert proc.stderr is not None
    buf, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stderr], [], [], 0.2)[0]:
            buf += os.read(proc.stderr.fileno(), 65536)
            for line in buf.decode(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line
    raise AssertionError(f"no {prefix!r} line (exit {proc.poll()}):\n" + buf.decode(errors="replace"))


def test_every_entry_point_is_a_command_of_the_bundle(built: Built, tmp_path: Path) -> None:
    env = plain_env(tmp_path)
    v = bundle(built, "--version", env=env)
    assert (v.returncode, v.stdout.strip()) == (0, f"annexsync {built.version}"), v.stderr
    usage = bundle(built, env=env, cmd="git-remote-annexsync")
    assert usage.returncode == 2 and "usage: git-remote-annexsync" in usage.stderr
    addr = bundle(built, "address", cmd="git-annex-p2p-annexsync-tcp",
                  env={**env, "ANNEXSYNC_P2P_ADDRESS": "127.0.0.1:4242"})
    assert (addr.returncode, addr.stdout) == (0, "127.0.0.1:4242\n"), addr.stderr
    # the core starts helpers as `sys.executable -m MODULE` (core/p2p/gateway.py)
    shell = bundle(built, "-m", "core.p2p.shell", "--help", env=env)
    assert shell.returncode == 0 and "p2pstdio" in shell.stdout, shell.stderr
    man = built.tree / "share" / "man" / "man1"
    assert sorted(p.name for p in man.iterdir()) == [
        "annexsync.1.gz", "git-annex-p2p-annexsync-tcp.1.gz", "git-remote-annexsync.1.gz"]


def test_the_bundled_keyring_reaches_the_secret_service(built: Built, tmp_path: Path,
                                                        real_keyring: object) -> None:
    """SecretService over jeepney works from the bundle (hidden imports, entry-point metadata)."""
    import keyring

    env = plain_env(tmp_path)
    backends = bundle(built, "-m", "keyring", "--list-backends", env=env)
    assert "SecretService" in backends.stdout, backends.stdout + backends.stderr
    put = bundle(built, "-m", "keyring", "set", "annexsync:bundle-test", "me", env=env,
                 stdin="bundled secret\n")
    assert put.returncode == 0, put.stderr
    assert keyring.get_password("annexsync:bundle-test", "me") == "bundled secret"


@requires_x
@pytest.mark.tray
def test_bundle_shows_its_tray_icon_answers_the_cli_and_quits(built: Built, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Bundle\n\temail = bundle@example.com\n")
    env = plain_env(home)
    repo = tmp_path / "Annex"
    repo.mkdir()
    made = bundle(built, "init", "bundle", env=env, cwd=repo)
    assert made.returncode == 0, made.stderr
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "settings.json").write_text(json.dumps({"repositories": [str(repo)]}))
    app = subprocess.Popen([str(built.tree / "bin" / "annexsync"), "--config-dir", str(cfg)],
                           env={**env, "ANNEXSYNC_STARTUP_TRACE": "1"},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_line(app, "tray-visible ", 60)
        status = bundle(built, "--config-dir", str(cfg), "status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        s = json.loads(status.stdout)
        assert s["running"] and [r["path"] for r in s["repos"]] == [str(repo)], s
        app.send_signal(signal.SIGTERM)
        assert app.wait(30) == 0
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)
