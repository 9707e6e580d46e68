"""Ordinary clones: annexsync learns a git remote's UUID as git-annex does (issue 10).

``git clone ssh://localhost/path`` through the fake ssh of
``test_p2p_support`` (``GIT_SSH_COMMAND`` + ``GIT_ANNEX_USE_GIT_SSH=1``, as a
user of git-annex sets them), with real git-annex-shell from the venv on the
other end, or ``annexsync`` where ``annex-shell`` names it; and a fresh clone
of a dumb-HTTP git URL whose ``config`` advertises a real ``git annex
p2phttp``.  Nothing here presets ``remote.NAME.annex-uuid``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import annex, git, run
from tests.integration.test_p2p_support import content_of, install_fake_ssh
from tests.integration.test_p2phttp_support import git_annex_p2phttp, make_server_repo

pytestmark = pytest.mark.interop

HELLO = b"hello plain ssh\n"


@pytest.fixture
def ssh_clone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Path, str, Path]]:
    """(server, clone, server uuid, ssh log): a clone made with ``git clone ssh://``."""
    log = install_fake_ssh(tmp_path, monkeypatch)
    server = tmp_path / "server"
    uuid = make_server_repo(server, {"a.txt": HELLO})
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", f"ssh://localhost{server}", str(clone))
    run(["annexsync", "init", "client"], clone)
    assert git(clone, "config", "remote.origin.annex-uuid", check=False) == ""
    log.write_text("")
    os.chdir(clone)
    yield server, clone, uuid, log


def _uuid_of(clone: Path, remote: str) -> str:
    return git(clone, "config", f"remote.{remote}.annex-uuid", check=False).strip()


def test_plain_ssh_clone_get_drop_sync(ssh_clone: tuple[Path, Path, str, Path]) -> None:
    server, clone, uuid, log = ssh_clone
    out = run(["annexsync", "get", "a.txt"], clone)
    assert (clone / "a.txt").read_bytes() == HELLO, out.stdout + out.stderr
    assert _uuid_of(clone, "origin") == uuid  # learned and cached, as git-annex does
    assert "git-annex-shell 'configlist' '" + str(server) + "'" in log.read_text()
    annex(clone, "fsck", "-q", "a.txt")

    key = annex(clone, "lookupkey", "a.txt").strip()
    run(["annexsync", "drop", "--from", "origin", "a.txt"], clone)
    assert content_of(server, key) is None

    (clone / "b.txt").write_bytes(b"sent by sync --content\n")
    run(["annexsync", "add", "b.txt"], clone)
    git(clone, "commit", "-q", "-m", "b")
    run(["annexsync", "sync", "--content"], clone)
    key_b = annex(clone, "lookupkey", "b.txt").strip()
    assert content_of(server, key_b) == b"sent by sync --content\n"
    assert log.read_text().count("configlist") == 1  # asked once, then the cache


def test_annexsync_as_annex_shell(ssh_clone: tuple[Path, Path, str, Path]) -> None:
    server, clone, uuid, log = ssh_clone
    git(clone, "config", "remote.origin.annex-shell", "annexsync")
    run(["annexsync", "get", "a.txt"], clone)
    assert (clone / "a.txt").read_bytes() == HELLO
    assert _uuid_of(clone, "origin") == uuid
    text = log.read_text()
    assert "annexsync 'configlist'" in text and "annexsync 'p2pstdio'" in text
    assert "git-annex-shell" not in text


def test_annex_ignore_is_not_asked(ssh_clone: tuple[Path, Path, str, Path]) -> None:
    _server, clone, _uuid, log = ssh_clone
    git(clone, "config", "remote.origin.annex-ignore", "true")
    out = run(["annexsync", "get", "a.txt"], clone, check=False)
    assert out.returncode != 0 and "no reachable remote" in out.stdout + out.stderr
    assert log.read_text() == ""  # no ssh at all
    assert _uuid_of(clone, "origin") == ""


def test_server_without_git_annex_gets_annex_ignore(
    ssh_clone: tuple[Path, Path, str, Path],
) -> None:
    _server, clone, _uuid, _log = ssh_clone
    git(clone, "config", "remote.origin.annex-shell", "no-such-git-annex-shell")
    out = run(["annexsync", "get", "a.txt"], clone, check=False)
    assert out.returncode != 0
    assert "does not have git-annex installed; setting annex-ignore" in out.stderr
    assert git(clone, "config", "remote.origin.annex-ignore").strip() == "true"


@contextlib.contextmanager
def _dumb_http(root: Path) -> Iterator[int]:
    """A static HTTP server for ``root`` on loopback (a dumb-HTTP git host)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_fresh_http_clone_learns_uuid_and_annexurl(tmp_path: Path) -> None:
    server = tmp_path / "server"
    uuid = make_server_repo(server, {"a.txt": HELLO})
    with git_annex_p2phttp(server, "--wideopen", "-J2") as p2phttp:
        annex_url = f"annex+http://127.0.0.1:{p2phttp.port}/git-annex/"
        git(server, "config", "annex.url", annex_url)
        git(server, "update-server-info")
        with _dumb_http(tmp_path) as port:
            clone = tmp_path / "clone"
            git(tmp_path, "clone", "-q", f"http://127.0.0.1:{port}/server/.git", str(clone))
            run(["annexsync", "init", "client"], clone)
            git(clone, "config", "annex.security.allowed-ip-addresses", "127.0.0.1")
            assert _uuid_of(clone, "origin") == ""
            out = run(["annexsync", "get", "a.txt"], clone, check=False)
            assert (clone / "a.txt").read_bytes() == HELLO, out.stdout + out.stderr
    assert _uuid_of(clone, "origin") == uuid
    assert git(clone, "config", "remote.origin.annexurl").strip() == annex_url


def test_unreachable_ssh_warns_and_asks_again(
    ssh_clone: tuple[Path, Path, str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ssh's own failure (exit 255) is not "no git-annex there": nothing is cached."""
    _server, clone, uuid, _log = ssh_clone
    down = tmp_path / "ssh-down"
    down.write_text(
        "#!/bin/sh\necho 'ssh: connect to host localhost: Connection refused' >&2\nexit 255\n"
    )
    down.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(down))
    out = run(["annexsync", "get", "a.txt"], clone, check=False)
    assert out.returncode != 0
    assert "Unable to connect to repository" in out.stderr
    assert git(clone, "config", "remote.origin.annex-ignore", check=False) == ""
    assert _uuid_of(clone, "origin") == ""
    monkeypatch.undo()  # ssh is back (the fixture's fake): the next command learns it
    install_fake_ssh(tmp_path, monkeypatch)
    run(["annexsync", "get", "a.txt"], clone)
    assert _uuid_of(clone, "origin") == uuid


def test_http_remote_without_git_annex_gets_annex_ignore(tmp_path: Path) -> None:
    """A plain git host answers 404 for ``<url>/config``: annex-ignore, as real
    git-annex sets it in a repository beside ours."""
    (tmp_path / "www").mkdir()
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for repo in (ours, theirs):
        repo.mkdir()
        git(repo, "init", "-q")
    run(["annexsync", "init", "client"], ours)
    annex(theirs, "init", "-q", "theirs")
    with _dumb_http(tmp_path / "www") as port:
        for repo in (ours, theirs):
            git(repo, "remote", "add", "origin", f"http://127.0.0.1:{port}/none.git")
            git(repo, "config", "annex.security.allowed-ip-addresses", "127.0.0.1")
        out = run(["annexsync", "info"], ours, check=False)
        annex(theirs, "info", "-q", check=False)
    assert "not usable by git-annex; setting annex-ignore" in out.stderr
    for repo in (ours, theirs):
        assert git(repo, "config", "remote.origin.annex-ignore").strip() == "true", repo.name


def test_path_clone_with_annexurl_knows_the_uuid(tmp_path: Path) -> None:
    """Spec clusters.md 13 ``c_http``: a clone of a local path with annexUrl set
    by hand; the UUID comes from the path, as git-annex reads it."""
    server = tmp_path / "server"
    make_server_repo(server, {"a.txt": HELLO})
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(server), str(clone))
    run(["annexsync", "init", "client"], clone)
    with git_annex_p2phttp(server, "--wideopen", "-J2") as p2phttp:
        git(clone, "config", "remote.origin.annexurl",
            f"annex+http://127.0.0.1:{p2phttp.port}/git-annex/")  # fmt: skip
        out = run(["annexsync", "get", "a.txt"], clone, check=False)
    assert (clone / "a.txt").read_bytes() == HELLO, out.stdout + out.stderr
