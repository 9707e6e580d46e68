"""Shared fixtures: a throwaway HOME with a git identity, and real git / git-annex.

Real git-annex comes from PyPI (``git-annex`` in the test extra); its wrapper
lives next to the test interpreter, so that directory goes first on PATH.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BIN = str(Path(sys.executable).parent)

# --- the ``interop`` marker is on exactly the tests that run git-annex ---------------
# git-annex and git-annex-shell are reached through shims first on PATH; each run
# appends a byte to the file named by ANNEX_RUNS, which is fresh for every test.
ANNEX_RUNS = "ANNEXSYNC_TEST_ANNEX_RUNS"
_SHIMS = Path(tempfile.mkdtemp(prefix="annexsync-shims-"))
atexit.register(shutil.rmtree, _SHIMS, ignore_errors=True)  # one per process
for _name in ("git-annex", "git-annex-shell"):
    _shim = _SHIMS / _name
    _shim.write_text(f'#!/bin/sh\n[ -n "${ANNEX_RUNS}" ] && printf x >> "${ANNEX_RUNS}"\n'
                     f'exec "{BIN}/{_name}" "$@"\n')
    _shim.chmod(0o755)
_RUNS_KEY = pytest.StashKey[Path]()
_WIDE_ANNEX_FIXTURES: set[int] = set()  # module/session fixture definitions that ran git-annex


def _runs(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except FileNotFoundError:
        return 0


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    runs = _SHIMS / f"runs-{abs(hash(item.nodeid))}-{os.getpid()}"
    runs.unlink(missing_ok=True)
    os.environ[ANNEX_RUNS] = str(runs)
    item.stash[_RUNS_KEY] = runs


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest) -> Iterator[None]:
    runs = Path(os.environ[ANNEX_RUNS]) if ANNEX_RUNS in os.environ else None
    before = _runs(runs)
    yield
    if fixturedef.scope != "function" and _runs(runs) > before:
        _WIDE_ANNEX_FIXTURES.add(id(fixturedef))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    # Captured output may hold a non-UTF-8 file name as surrogates (surrogateescape):
    # a pytest-xdist worker could not send such a report (UnicodeEncodeError ends it)
    report.sections = [(title, _printable(text)) for title, text in report.sections]
    if call.when != "call" or not report.passed:
        return
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    ran = _runs(item.stash.get(_RUNS_KEY, None)) > 0 or any(
        id(d) in _WIDE_ANNEX_FIXTURES for ds in defs.values() for d in ds)
    marked = item.get_closest_marker("interop") is not None
    if ran != marked:
        report.outcome = "failed"
        report.longrepr = ("runs git-annex but is not marked interop" if ran else
                           "marked interop but never runs git-annex")


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
    monkeypatch.setenv("PATH", os.pathsep.join([str(_SHIMS), BIN, os.environ.get("PATH", "")]))
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


@pytest.fixture
def xmpp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A throw-away prosody with TLS on loopback (tests/xmpp_server.py)."""
    from tests.xmpp_server import available, prosody

    if not available():
        pytest.fail("prosody is not installed: tests/run installs it (apt: prosody lua-unbound)")
    with prosody(tmp_path_factory.mktemp("prosody")) as server:
        yield server
