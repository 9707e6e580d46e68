"""``annexsync p2p-listen`` and the daemon's ``p2p_listen`` against real peers (spec 4.2).

The command serves a repository to a real git-annex peer linked the way
git-annex links one: ``git annex p2p --enable annexsync-tcp`` and
``--gen-addresses`` in the served repository (the token lands in its
``annex/creds/p2pauth``), ``git annex p2p --link`` on the peer, then
``git fetch``, ``git annex get`` and ``git annex copy --to`` through
git-annex's own ``git-remote-p2p-annex`` and our network helper.  The
daemon, given ``p2p_listen``, serves every synced repository, each to the
peers holding its token.  Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from pathlib import Path

import pytest

from core.api import Core
from core.ops.add import add
from core.p2p.remote import P2PClient
from core.p2p.transport import open_tcp
from core.repo.key import Key
from core.repo.repository import AnnexRepo
from core.settings import Settings, save_settings
from tests.integration.servers_support import CLIENT_UUID, start_server
from tests.integration.test_daemon import FAST, running, wait_for
from tests.integration.test_p2p_connect import (
    _git_annex_remote_helper,
    git,
    helpers,  # noqa: F401 - a fixture
    needs_git_annex,
    run,
)

LISTEN_PORT = r"listening on 127\.0\.0\.1:(\d+)"


def _served_repo(path: Path) -> AnnexRepo:
    server = AnnexRepo.init(path, "served")
    (server.path / "s.bin").write_bytes(os.urandom(50_000))
    os.chdir(server.path)
    add(server, ["s.bin"])
    git(server.path, "commit", "-q", "-m", "s")
    return server


@needs_git_annex
@pytest.mark.interop
def test_p2p_listen_serves_a_git_annex_peer_linked_with_p2p_link(
    tmp_path: Path, helpers: Path  # noqa: F811 - the fixture
) -> None:
    server = _served_repo(tmp_path / "server")
    _git_annex_remote_helper(helpers)
    argv = ["p2p-listen", "--bind", "127.0.0.1:0", str(server.path)]
    with start_server(argv, tmp_path, LISTEN_PORT) as (_proc, port):
        env = {**os.environ, "ANNEXSYNC_P2P_ADDRESS": f"127.0.0.1:{port}"}
        run(server.path, "git", "annex", "p2p", "--enable", "annexsync-tcp", env=env)
        address = run(server.path, "git", "annex", "p2p", "--gen-addresses").stdout.strip()
        assert re.fullmatch(rf"p2p-annex::annexsync-tcp:127\.0\.0\.1:{port}:\S+", address)
        token = address.rsplit(":", 1)[1]
        assert token in (server.gitdir / "annex" / "creds" / "p2pauth").read_text()

        client = tmp_path / "ga-client"
        git(tmp_path, "init", "-q", str(client))
        run(client, "git", "annex", "init", "ga-client")
        run(client, "git", "annex", "p2p", "--link", "--name", "peer", inp=address + "\n")
        assert git(client, "config", "remote.peer.annex-uuid").strip() == server.uuid
        git(client, "fetch", "peer")  # git-annex's git-remote-p2p-annex, CONNECT
        git(client, "checkout", "-q", "-b", "work", "peer/main")
        run(client, "git", "annex", "get", "--from", "peer", "s.bin")
        assert (client / "s.bin").read_bytes() == (server.path / "s.bin").read_bytes()
        (client / "c.txt").write_text("from git-annex\n")
        run(client, "git", "annex", "add", "c.txt")
        run(client, "git", "annex", "copy", "--to", "peer", "c.txt")
        key = Key.parse(run(client, "git", "annex", "lookupkey", "c.txt").stdout.strip())
        assert server.objects.has(key)
        wrong = address.rsplit(":", 1)[0] + ":" + "0" * len(token)
        bad = run(client, "git", "annex", "p2p", "--link", "--name", "bad", inp=wrong + "\n",
                  check=False)  # fmt: skip
        assert bad.returncode != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _auth(port: int, token: str) -> str:
    c = await P2PClient.connect(await open_tcp("127.0.0.1", port), our_uuid=CLIENT_UUID,
                                token=token)  # fmt: skip
    await c.aclose()
    return c.server_uuid


@pytest.mark.asyncio
async def test_the_daemon_serves_every_synced_repository_on_p2p_listen(tmp_path: Path) -> None:
    repos = [AnnexRepo.init(tmp_path / name, name) for name in ("one", "two")]
    for i, r in enumerate(repos):
        creds = r.gitdir / "annex" / "creds"
        creds.mkdir(parents=True)
        (creds / "p2pauth").write_text(f"{i:032x}\n")
    port = _free_port()
    config = tmp_path / "config"
    save_settings(config, Settings(repositories=tuple(str(r.path) for r in repos),
                                   p2p_listen=f"127.0.0.1:{port}"))  # fmt: skip
    core = Core(config, timings=FAST)
    async with running(core):
        await wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True,
                       "the listener")  # fmt: skip
        assert await asyncio.wait_for(_auth(port, f"{0:032x}"), 20) == repos[0].uuid
        assert await asyncio.wait_for(_auth(port, f"{1:032x}"), 20) == repos[1].uuid
        with socket.socket() as taken:  # an address in use: an alert, the daemon runs on
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = f"127.0.0.1:{taken.getsockname()[1]}"
            await core.update_settings(core.settings.replace(p2p_listen=busy))
            await wait_for(lambda: any(f"Cannot serve P2P peers on {busy}" in a.text
                                       for a in core.status.alerts), "the alert")  # fmt: skip
        await core.update_settings(core.settings.replace(p2p_listen=f"127.0.0.1:{port}x"))
        await wait_for(lambda: any("is not HOST:PORT" in a.text
                                   for a in core.status.alerts), "the second alert")  # fmt: skip
        assert core._tg is not None  # still running
