"""The P2P protocol, client and server as they are, over an encrypted session
on loopback TCP: GET and PUT between a repository made by real git-annex
and our clone, checked by ``git annex fsck``; refusals over the wire; and a
relay that flips one byte mid-transfer (the transfer fails, nothing
unverified is stored).

The server runs on its own event loop in a thread (as ``test_p2p_listener``);
the client is the synchronous ``P2PRemote`` whose connector opens TCP, runs
the handshake and hands the encrypted reader/writer to the P2P client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from core.errors import CoreError, SessionRefused
from core.ops.add import add
from core.ops.transfer import copy_key_to, get_key
from core.p2p.remote import P2PRemote
from core.p2p.runtime import Channel
from core.p2p.serving import ServedRepo, new_server_connection, serve_channel
from core.p2p.transport import Link
from core.progress import NullProgress
from core.remotes import RemoteInfo, RemoteKind
from core.repo.key import Key
from core.repo.repository import AnnexRepo
from core.session import PeerCredentials
from core.session.stream import accept_session, connect_session
from tests.conftest import annex, git

pytestmark = pytest.mark.interop

BIG = os.urandom(600_000)
KEY_C, KEY_S = X25519PrivateKey.generate(), X25519PrivateKey.generate()
PSK = os.urandom(32)
CLIENT = PeerCredentials("dev-client", KEY_C, "dev-server", KEY_S.public_key(), PSK)
SERVER = PeerCredentials("dev-server", KEY_S, "dev-client", KEY_C.public_key(), PSK)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopThread:
    """An event loop in a thread serving TCP handlers on 127.0.0.1:0."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []
        self.handlers: set[asyncio.Task[None]] = set()

    def listen(self, handler: Handler) -> int:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.handlers.add(task)
            try:
                await handler(reader, writer)
            finally:
                self.handlers.discard(task)

        async def start() -> asyncio.Server:
            return await asyncio.start_server(tracked, "127.0.0.1", 0)

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        async def close() -> None:
            for s in self.servers:
                s.close()
                await s.wait_closed()
            for t in list(self.handlers):  # Python 3.11 has no close_clients()
                t.cancel()
            await asyncio.gather(*self.handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def serve(served: ServedRepo, lookup: Callable[[str], PeerCredentials | None]) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            s = await accept_session(reader, writer, lookup, name="client", handshake_timeout=10)
        except CoreError:
            return
        try:
            ch = Channel(new_server_connection(served), s.reader, s.writer, read_timeout=10)
            await serve_channel(served, ch, greet=True, idle_timeout=10)
        except CoreError:
            pass
        finally:
            await s.aclose()

    return handle


def relay(to_port: int, flip_at: int | None, upstream: bool) -> Handler:
    """Forward both ways; flip one bit of byte ``flip_at`` (counted in the
    chosen direction) -- an attacker on the path."""

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, flip: int | None) -> None:
        seen = 0
        try:
            while data := await asyncio.wait_for(src.read(1 << 16), 10):
                if flip is not None and seen <= flip < seen + len(data):
                    b = bytearray(data)
                    b[flip - seen] ^= 0x01
                    data = bytes(b)
                seen += len(data)
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        r2, w2 = await asyncio.open_connection("127.0.0.1", to_port)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(pump(reader, w2, flip_at if upstream else None))
                tg.create_task(pump(r2, writer, None if upstream else flip_at))
        except* (OSError, TimeoutError):
            pass

    return handle


@dataclass
class Peers:
    server: Path
    clone: AnnexRepo
    info: RemoteInfo
    loop: LoopThread
    port: int


def repositories(tmp_path: Path) -> tuple[Path, AnnexRepo, ServedRepo]:
    """A git-annex repository holding ``big.bin`` (served) and our clone of it (cwd)."""
    server = tmp_path / "server"
    server.mkdir()
    git(server, "init", "-q")
    annex(server, "init", "-q", "served over a session")
    (server / "big.bin").write_bytes(BIG)
    annex(server, "add", "-q", "big.bin")
    git(server, "commit", "-q", "-m", "big")
    git(tmp_path, "clone", "-q", str(server), str(tmp_path / "clone"))
    clone = AnnexRepo.open(tmp_path / "clone")
    os.chdir(clone.path)
    return server, clone, ServedRepo(AnnexRepo.open(server))


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    server, clone, served = repositories(tmp_path)
    loop = LoopThread()
    port = loop.listen(serve(served, {"dev-client": SERVER}.get))
    info = RemoteInfo("paired", served.uuid, RemoteKind.P2P)
    yield Peers(server, clone, info, loop, port)
    loop.stop()
    clone.close()


def session_remote(p: Peers, port: int, creds: PeerCredentials = CLIENT) -> P2PRemote:
    async def connect() -> Link:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        s = await connect_session(reader, writer, creds, name="server", handshake_timeout=10)
        return Link(s.reader, s.writer, "paired:dev-server")

    return P2PRemote(p.info, p.clone.uuid, connect, read_timeout=10)


def key_of(repo: Path, path: str) -> Key:
    return Key.parse(annex(repo, "lookupkey", path).strip())


def get_over(p: Peers, remote: P2PRemote, key: Key, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr("core.ops.transfer._sources", lambda repo, k, only: [remote])
    return get_key(p.clone, key, NullProgress())


def test_get_and_put_over_encrypted_session(peers: Peers, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = session_remote(peers, peers.port)
    try:
        key = key_of(peers.server, "big.bin")
        assert get_over(peers, remote, key, monkeypatch) == "from paired"
        assert (peers.clone.path / "big.bin").read_bytes() == BIG
        (peers.clone.path / "new.bin").write_bytes(os.urandom(300_000))
        add(peers.clone, ["new.bin"])
        new = key_of(peers.clone.path, "new.bin")
        copy_key_to(peers.clone, new, remote, NullProgress())
    finally:
        remote.close()
    annex(peers.server, "fsck", "--key", str(new), "--quiet")
    annex(peers.server, "fsck", "--key", str(key), "--quiet")
    annex(peers.clone.path, "fsck", "--key", str(key), "--quiet")
    assert "new.bin" not in git(peers.server, "ls-files")  # content only: git is not synced


def test_refusals_are_security_events(peers: Peers, caplog: pytest.LogCaptureFixture) -> None:
    """Wrong pair secret: the client cannot verify the server's answer and
    refuses first.  Wrong static key, or a device the server does not know:
    the server refuses.  Both ends log it on ``annexsync.security``."""
    caplog.set_level(logging.WARNING, logger="annexsync.security")
    wrong = [(replace(CLIENT, psk=os.urandom(32)), False),
             (replace(CLIENT, own_private=X25519PrivateKey.generate()), True),
             (replace(CLIENT, own_device_id="dev-stranger"), True)]
    for creds, by_server in wrong:
        remote = session_remote(peers, peers.port, creds)
        try:
            with pytest.raises(SessionRefused) as info:
                remote.check_present(key_of(peers.server, "big.bin"))
        finally:
            remote.close()
        assert info.value.by_peer is by_server and info.value.peer_device_id == "dev-server"
    texts = [r.getMessage() for r in caplog.records if r.name == "annexsync.security"]
    assert "session refused for dev-stranger: the device is not paired with this one" in texts
    assert sum("refused for dev-client" in t for t in texts) == 1  # wrong static key
    assert sum("refused by dev-client" in t for t in texts) == 1  # the client's REFUSE
    assert sum("refused by dev-server" in t for t in texts) == 2
    assert sum("refused for dev-server" in t for t in texts) == 1


@pytest.mark.parametrize("upstream", [False, True], ids=["get", "put"])
def test_flipped_byte_mid_transfer_stores_nothing(
    peers: Peers, upstream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = peers.loop.listen(relay(peers.port, 200_000, upstream))
    remote = session_remote(peers, port)
    try:
        if upstream:
            (peers.clone.path / "up.bin").write_bytes(os.urandom(500_000))
            add(peers.clone, ["up.bin"])
            key = key_of(peers.clone.path, "up.bin")
            with pytest.raises(CoreError):
                copy_key_to(peers.clone, key, remote, NullProgress())
            where, original = peers.server, (peers.clone.path / "up.bin").read_bytes()
        else:
            key = key_of(peers.server, "big.bin")
            with pytest.raises(CoreError, match="authentication"):
                get_over(peers, remote, key, monkeypatch)
            where, original = peers.clone.path, BIG
    finally:
        remote.close()
    assert annex(where, "find", "--in=here", "--key", str(key), check=False).strip() == ""
    assert not list((where / ".git/annex/objects").rglob(key.file_name()))
    partial = where / ".git/annex/tmp" / key.file_name()
    if partial.exists():  # kept for resume: only bytes that were authenticated
        assert original.startswith(partial.read_bytes())
