"""Shared fixtures: a throwaway HOME with a git identity, and real git / git-annex.

Real git-annex comes from PyPI (``git-annex`` in the test extra); its wrapper
lives next to the test interpreter, so that directory goes first on PATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BIN = str(Path(sys.executable).parent)


def isolate_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point HOME at ``home`` with a git identity, no system config, and real git-annex on PATH."""
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n"
        "[protocol \"file\"]\n\tallow = always\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)  # restored after the test, whatever it changed
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("PATH", BIN + os.pathsep + os.environ.get("PATH", ""))
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def git_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME with a git identity and no system config."""
    home = tmp_path_factory.mktemp("home")
    isolate_home(home, monkeypatch)
    return home


def run(cmd: list[str], cwd: Path | str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a real git / git-annex command; on failure show its output."""
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def git(cwd: Path | str, *args: str, check: bool = True) -> str:
    return run(["git", *args], cwd, check=check).stdout


def annex(cwd: Path | str, *args: str, check: bool = True) -> str:
    return run(["git", "annex", *args], cwd, check=check).stdout


@pytest.fixture
def real_keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """keyring backed by a real Secret Service (private D-Bus + gnome-keyring)."""
    from tests.secret_service import secret_service

    with secret_service(tmp_path_factory.mktemp("secrets")) as backend:
        yield backend


@pytest.fixture
def annex_repo(tmp_path: Path) -> Iterator[Path]:
    """A repository made by real git-annex (init only)."""
    repo = tmp_path / "ga"
    repo.mkdir()
    git(repo, "init", "-q")
    annex(repo, "init", "-q", "made by git-annex")
    yield repo


# PySide6 6.12 can abort the interpreter during its final teardown ("bool_dealloc:
# deallocating True or False", exit 134) after every test passed, when a run ends
# with Qt objects still referenced from C++.  The results are all reported by then,
# so a run that imported Qt leaves with its real status instead of the C crash.
_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if "PySide6" in sys.modules and _exit_status:
        config.get_terminal_writer().flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])


@pytest.fixture
def xmpp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A throw-away prosody with TLS on loopback (tests/xmpp_server.py)."""
    from tests.xmpp_server import available, prosody

    if not available():
        pytest.fail("prosody is not installed: tests/run installs it (apt: prosody lua-unbound)")
    with prosody(tmp_path_factory.mktemp("prosody")) as server:
        yield server
