"""The daemon moves content to a remote it reaches over P2P HTTP (``annexurl``).

A repository served by real ``git annex p2phttp``: git travels through the
remote's path URL, content through its ``annexurl``, as git-annex's own sync
does with such a remote.  Before, the daemon pushed the branch and left the
content behind: the server's clones saw a file they could not get.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.api import Core
from tests.conftest import git
from tests.integration.test_daemon import FAST, running, wait_for
from tests.integration.test_p2phttp_support import git_annex_p2phttp

pytestmark = [pytest.mark.asyncio, pytest.mark.interop]


def _objects(server: Path) -> dict[str, bytes]:
    """The annexed objects in the server's store, by key name."""
    return {f.name: f.read_bytes()
            for f in (server / ".git" / "annex" / "objects").rglob("*") if f.is_file()}


async def test_daemon_uploads_content_to_an_annex_http_remote(tmp_path: Path) -> None:
    server = tmp_path / "server"
    server.mkdir()
    git(server, "init", "-q", "-b", "main")
    git(server, "annex", "init", "server")
    git(server, "config", "receive.denyCurrentBranch", "updateInstead")
    local = tmp_path / "laptop"
    with git_annex_p2phttp(server, "--wideopen", "-J2") as p2phttp:
        core = Core(tmp_path / "cfg", timings=FAST)
        async with running(core):
            await core.add_repository(str(local), create=True, description="laptop")
            git(local, "remote", "add", "server", str(server))
            git(local, "config", "remote.server.annexurl",
                f"annex+http://127.0.0.1:{p2phttp.port}/git-annex/")
            git(local, "config", "annex.security.allowed-ip-addresses", "127.0.0.1")
            await core.sync_now(str(local))
            data = os.urandom(200_000)
            (local / "photo.jpg").write_bytes(data)
            await wait_for(lambda: data in _objects(server).values(),
                           "photo.jpg's content on the server")
    # the server's own git-annex logged it and finds it intact
    key = next(k for k, v in _objects(server).items() if v == data)
    assert f"fsck {key} (checksum...) ok" in git(server, "annex", "fsck", "--key", key)
