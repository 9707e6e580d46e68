"""Unlocked files follow their content, as with git-annex (issue 10).

git-annex fills every unlocked file that uses a key when the content
arrives, and turns them back into pointers when it leaves.  Checked for our
``get`` (several files sharing one key) and for our server (``annexsync
p2pstdio`` as the ``annex-shell`` of a real git-annex client, over the fake
ssh of ``test_p2p_support``): a PUT fills the server's pointer files, a
REMOVE empties them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.repo.key import Key
from core.repo.pointer import format_pointer
from tests.conftest import annex, git, run
from tests.integration.test_p2p_support import install_fake_ssh
from tests.integration.test_p2phttp_support import our_p2phttp

pytestmark = pytest.mark.interop

DATA = b"shared by several unlocked files\n"


def _unlocked_repo(path: Path, names: list[str]) -> None:
    """A real git-annex repository with ``names`` unlocked, all one content."""
    path.mkdir()
    git(path, "init", "-q")
    annex(path, "init", "-q", path.name)
    for name in names:
        (path / name).write_bytes(DATA)
    annex(path, "add", "-q", *names)
    annex(path, "unlock", *names)
    git(path, "commit", "-q", "-m", "unlocked")


def _key(repo: Path, name: str) -> str:
    return annex(repo, "lookupkey", name).strip()


def test_get_fills_every_unlocked_file_of_the_key(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    _unlocked_repo(origin, ["a.txt", "b.txt"])
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    run(["annexsync", "init", "clone"], clone)
    pointer = format_pointer(Key.parse(_key(clone, "a.txt")))
    assert (clone / "b.txt").read_bytes() == pointer
    os.chdir(clone)
    run(["annexsync", "get", "a.txt"], clone)
    assert (clone / "a.txt").read_bytes() == DATA
    assert (clone / "b.txt").read_bytes() == DATA  # git-annex fills it too
    assert git(clone, "status", "--porcelain") == ""


def test_put_and_remove_update_the_servers_unlocked_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_ssh(tmp_path, monkeypatch)
    client = tmp_path / "client"
    _unlocked_repo(client, ["a.txt", "b.txt"])
    server = tmp_path / "server"
    git(tmp_path, "clone", "-q", str(client), str(server))
    run(["annexsync", "init", "server"], server)
    key = _key(client, "a.txt")
    pointer = format_pointer(Key.parse(key))
    assert (server / "a.txt").read_bytes() == pointer

    git(client, "remote", "add", "server", f"ssh://localhost{server}")
    git(client, "config", "remote.server.annex-shell", "annexsync")
    annex(client, "copy", "-q", "--to", "server", "a.txt")
    assert (server / "a.txt").read_bytes() == DATA
    assert (server / "b.txt").read_bytes() == DATA
    assert git(server, "status", "--porcelain") == ""

    annex(client, "drop", "-q", "--from", "server", "a.txt")
    assert (server / "a.txt").read_bytes() == pointer
    assert (server / "b.txt").read_bytes() == pointer
    assert git(server, "status", "--porcelain") == ""
    server_uuid = git(server, "config", "annex.uuid").strip()
    assert server_uuid not in annex(server, "whereis", "--key", key, check=False)


def test_p2phttp_put_and_remove_update_unlocked_files(tmp_path: Path) -> None:
    client = tmp_path / "client"
    _unlocked_repo(client, ["a.txt", "b.txt"])
    server = tmp_path / "server"
    git(tmp_path, "clone", "-q", str(client), str(server))
    run(["annexsync", "init", "server"], server)
    pointer = format_pointer(Key.parse(_key(client, "a.txt")))
    git(client, "remote", "add", "server", str(server))
    annex(client, "sync", "-q", "--no-content", "--no-push", "server")  # learns its uuid
    git(client, "config", "annex.security.allowed-ip-addresses", "127.0.0.1")
    with our_p2phttp(server, "--wideopen", "-J2") as proc:
        git(client, "config", "remote.server.annexurl", f"annex+{proc.base}/git-annex/")
        annex(client, "copy", "-q", "--to", "server", "a.txt")
        assert (server / "a.txt").read_bytes() == DATA
        assert (server / "b.txt").read_bytes() == DATA
        annex(client, "drop", "-q", "--from", "server", "a.txt")
        assert (server / "a.txt").read_bytes() == pointer
        assert (server / "b.txt").read_bytes() == pointer
    assert git(server, "status", "--porcelain") == ""
