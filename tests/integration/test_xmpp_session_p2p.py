"""The P2P protocol over the Noise session over XEP-0047 through a real prosody
with TLS on loopback (xmpp-sync C.3, C.4): a GET of a file from a repository
made by real git-annex, stored only after its hash checked out, then
``git annex fsck`` on both sides.

The serving device runs on its own loop in a thread (as ``test_session_p2p``),
the fetching device is the synchronous ``P2PRemote`` whose connector opens an
IBB stream to the server's full JID and runs the handshake over it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core.ops.transfer import get_key
from core.p2p.remote import P2PRemote
from core.p2p.serving import ServedRepo
from core.p2p.transport import Link
from core.progress import NullProgress
from core.remotes import RemoteInfo, RemoteKind
from core.session.stream import connect_session
from core.xmpp.bytestream import IbbService
from core.xmpp.client import _Client, _open
from core.xmpp.payloads import bare
from tests.conftest import annex
from tests.integration.test_session_p2p import (
    BIG,
    CLIENT,
    SERVER,
    LoopThread,
    key_of,
    repositories,
    serve,
)
from tests.integration.xmpp_helpers import config
from tests.xmpp_server import Prosody

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


async def _online(server: Prosody, jid: str, resource: str) -> tuple[_Client, IbbService]:
    client = await _open(config(server, jid), resource, None)
    own = bare(str(client.boundjid))
    return client, IbbService(client, lambda peer: bare(peer) == own)


async def _accept_loop(service: IbbService, served: ServedRepo) -> None:
    handle = serve(served, {"dev-client": SERVER}.get)
    async with asyncio.TaskGroup() as tg:
        while True:
            pair = await service.accept()
            tg.create_task(handle(pair.reader, pair.writer))


def test_get_over_session_over_ibb(tmp_path: Path, xmpp_server: Prosody,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    jid = xmpp_server.register("alice", "pw")
    origin, clone, served = repositories(tmp_path)

    loop = LoopThread()
    run: Any = lambda coro: asyncio.run_coroutine_threadsafe(coro, loop.loop).result(20)  # noqa: E731

    async def start() -> tuple[_Client, asyncio.Task[None]]:
        client, service = await _online(xmpp_server, jid, "annexsync-bbbb0002")
        return client, asyncio.create_task(_accept_loop(service, served))

    server_client, accepting = run(start())
    server_jid = str(server_client.boundjid)
    mine: dict[str, Any] = {}

    async def connect() -> Link:
        if "service" not in mine:
            mine["client"], mine["service"] = await _online(xmpp_server, jid, "annexsync-aaaa0001")
        pair = await mine["service"].open(server_jid)
        s = await connect_session(pair.reader, pair.writer, CLIENT, name="server",
                                  handshake_timeout=10)  # fmt: skip
        return Link(s.reader, s.writer, "paired:dev-server")

    remote = P2PRemote(RemoteInfo("paired", served.uuid, RemoteKind.P2P), clone.uuid, connect,
                       read_timeout=20)  # fmt: skip
    key = key_of(origin, "big.bin")
    try:
        monkeypatch.setattr("core.ops.transfer._sources", lambda repo, k, only: [remote])
        assert get_key(clone, key, NullProgress()) == "from paired"
    finally:
        if "client" in mine:
            remote._run(mine["client"].shutdown())
        remote.close()

        async def stop() -> None:
            accepting.cancel()
            await asyncio.gather(accepting, return_exceptions=True)
            await server_client.shutdown()

        run(stop())
        loop.stop()
        clone.close()
    assert (clone.path / "big.bin").read_bytes() == BIG
    annex(clone.path, "fsck", "--key", str(key), "--quiet")
    annex(origin, "fsck", "--key", str(key), "--quiet")
