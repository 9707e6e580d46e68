"""A GET over a subprocess (the ssh transport): the payload goes from the pipe
straight into the receiver's reused buffers (``transport.open_subprocess``'s
``FdReader``, ``Channel.receive_payload``, ``Incoming.write_from``).

Our client against our p2pstdio server run as a real process.  The receiving
``Incoming`` is the real one, only told to count which of its two ways in
(``write`` per chunk, ``write_from`` from the descriptor) the payload took.
Content is still verified before it is kept, a resumed GET still hashes what
an earlier attempt left, and progress still adds up to what arrived.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.errors import ContentVerifyError
from core.p2p.remote import P2PClient
from core.p2p.transport import open_subprocess
from core.repo.key import Key
from core.repo.objects import Incoming
from core.repo.repository import AnnexRepo

Repos = tuple[AnnexRepo, AnnexRepo, bytes, Key]  # server, receiver, content, key
SIZE = 20 << 20  # past objects.THREADED_HASH_FROM: the ring of buffers and its threads


class Counting(Incoming):
    """The real ``Incoming``, counting the bytes each way in took."""

    def __init__(self, repo: AnnexRepo, key: Key) -> None:
        super().__init__(repo.objects, key)
        self.by_write = 0
        self.by_write_from = 0

    def write(self, data: bytes | memoryview) -> None:
        self.by_write += len(data)
        super().write(data)

    def write_from(self, read_into: Callable[[memoryview], int], count: int) -> int:
        n = super().write_from(read_into, count)
        self.by_write_from += n
        return n


def _key(data: bytes) -> Key:
    return Key("SHA256E", hashlib.sha256(data).hexdigest() + ".bin", size=len(data))


def _with_server(server: AnnexRepo, body: Callable[[P2PClient], Awaitable[None]]) -> None:
    async def go() -> None:
        link = await open_subprocess([sys.executable, "-m", "core.p2p.shell", "p2pstdio",
                                      str(server.path), "client-uuid"])  # fmt: skip
        c = await P2PClient.connect(link, our_uuid="client-uuid", expect_uuid=server.uuid)
        try:
            await body(c)
        finally:
            await c.aclose()

    asyncio.run(asyncio.wait_for(go(), 60))


@pytest.fixture
def repos(tmp_path: Path) -> Repos:
    """A server holding SIZE random bytes (put there by our client), an empty receiver."""
    server = AnnexRepo.init(tmp_path / "server", "server")
    data = os.urandom(SIZE)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    key = _key(data)

    async def put(c: P2PClient) -> None:
        await c.put(key, src, lambda n: None)

    _with_server(server, put)
    assert server.objects.has(key)
    return server, AnnexRepo.init(tmp_path / "receiver", "receiver"), data, key


def _get(repos: Repos) -> tuple[Counting, list[int]]:
    """GET the key from the server into the receiver: how it was written, the progress told."""
    server, receiver, _data, key = repos
    inc = Counting(receiver, key)
    progress: list[int] = []

    async def get(c: P2PClient) -> None:
        with inc:
            await c.get(key, inc, progress.append)
            inc.commit()

    _with_server(server, get)
    return inc, progress


def test_big_get_goes_from_the_pipe_into_the_buffers(repos: Repos) -> None:
    _server, receiver, data, key = repos
    inc, progress = _get(repos)
    assert (inc.by_write_from, inc.by_write) == (len(data), 0)
    assert sum(progress) == len(data)
    found = receiver.objects.find(key)
    assert found is not None and found.read_bytes() == data


def test_resumed_get_hashes_what_was_there(repos: Repos) -> None:
    _server, receiver, data, key = repos
    have = 3 << 20
    receiver.objects.tmp.mkdir(parents=True, exist_ok=True)
    (receiver.objects.tmp / key.file_name()).write_bytes(data[:have])
    inc, progress = _get(repos)
    assert inc.by_write_from == len(data) - have
    assert sum(progress) == len(data) - have
    found = receiver.objects.find(key)
    assert found is not None and found.read_bytes() == data


def test_corrupt_content_is_not_kept(repos: Repos) -> None:
    server, receiver, data, key = repos
    obj = server.objects.find(key)
    assert obj is not None
    obj.parent.chmod(0o755)
    obj.chmod(0o644)
    with open(obj, "r+b") as f:  # same size, one byte in the middle changed
        f.seek(SIZE // 2)
        f.write(bytes([data[SIZE // 2] ^ 1]))
    inc = Counting(receiver, key)

    async def get(c: P2PClient) -> None:
        with inc:
            await c.get(key, inc, lambda n: None)
            with pytest.raises(ContentVerifyError):
                inc.commit()

    _with_server(server, get)
    assert inc.by_write_from == len(data)
    assert not receiver.objects.has(key)
    assert not (receiver.objects.tmp / key.file_name()).exists()
