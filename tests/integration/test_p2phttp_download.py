"""Downloads from our server (spec 5.2, 5.3): the bytes, the length, the held-back byte.

An object of several send chunks arrives whole over HTTP/1.1, HTTP/1.0 (raw
until the close) and TLS, from offset 0 and from an offset; on a versioned
route an object whose mtime changes while it is sent arrives one byte short
(the only "invalid" signal), on the plain route whole.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest

from core.p2phttp.auth import AuthPolicy
from core.p2phttp.server import SEND_CHUNK, Settings, ssl_context
from tests.conftest import annex
from tests.integration.test_p2phttp_support import (
    CLIENT_UUID,
    in_process,
    lookupkey,
    make_cert,
    make_server_repo,
)

pytestmark = pytest.mark.interop  # make_server_repo runs git-annex

BIG = os.urandom(2 * SEND_CHUNK + 4321)
CHANGING = os.urandom(16 << 20)  # far more than the socket buffers hold


def _open(repo: Path) -> Settings:
    return Settings(repositories=[repo], policy=AuthPolicy(wideopen=True))


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "srv"
    return repo, make_server_repo(repo, {"big.bin": BIG, "changing.bin": CHANGING})


async def _get(url: str, **kw: object) -> tuple[int, bytes]:
    limit = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=limit) as s, s.get(url, **kw) as r:  # type: ignore[arg-type]
        return int(r.headers["X-git-annex-data-length"]), await r.read()


@pytest.mark.asyncio
async def test_a_big_object_arrives_whole(served: tuple[Path, str], tmp_path: Path) -> None:
    repo, uuid = served
    key = lookupkey(repo, "big.bin")
    async with in_process(_open(repo)) as server:
        base = f"http://127.0.0.1:{server.port}/git-annex/{uuid}"
        assert await _get(f"{base}/v4/key/{key}?clientuuid={CLIENT_UUID}") == (len(BIG), BIG)
        assert await _get(f"{base}/v4/key/{key}?clientuuid={CLIENT_UUID}&offset=5") == (
            len(BIG) - 5, BIG[5:])
        assert await _get(f"{base}/key/{key}") == (len(BIG), BIG)
        raw = await _http10(server.port, f"/git-annex/{uuid}/v4/key/{key}?clientuuid={CLIENT_UUID}")
        assert raw.split(b"\r\n\r\n", 1)[1] == BIG


@pytest.mark.asyncio
async def test_a_big_object_arrives_whole_over_tls(served: tuple[Path, str],
                                                   tmp_path: Path) -> None:  # fmt: skip
    repo, uuid = served
    cert, pkey = make_cert(tmp_path)
    key = lookupkey(repo, "big.bin")
    client = ssl.create_default_context(cafile=str(cert))
    async with in_process(_open(repo), tls=ssl_context(cert, pkey)) as server:
        url = f"https://127.0.0.1:{server.port}/git-annex/{uuid}/v4/key/{key}?clientuuid={CLIENT_UUID}"
        assert await _get(url, ssl=client) == (len(BIG), BIG)


async def _http10(port: int, target: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        async with asyncio.timeout(30):
            return await reader.read()
    finally:
        writer.close()


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, body = body.split(b"\r\n", 1)
        size = int(size_line, 16)
        if not size:
            return bytes(out)
        out += body[:size]
        assert body[size:size + 2] == b"\r\n"
        body = body[size + 2:]


async def _get_changing(port: int, target: str, obj: Path) -> tuple[int, bytes]:
    """GET over a small receive window; the object's mtime changes after the first bytes."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        async with asyncio.timeout(30):
            head = await reader.readuntil(b"\r\n\r\n")
            first = await reader.read(1 << 12)  # the server cannot be near the end yet
            st = obj.stat()
            os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
            rest = first
            while not rest.endswith(b"\r\n0\r\n\r\n"):
                more = await reader.read(1 << 20)
                assert more, "connection closed before the last chunk"
                rest += more
    finally:
        writer.close()
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"x-git-annex-data-length")))  # fmt: skip
    return length, _dechunk(rest)


@pytest.mark.asyncio
async def test_an_object_changed_while_sent_arrives_one_byte_short(
    served: tuple[Path, str]
) -> None:
    repo, uuid = served
    key = lookupkey(repo, "changing.bin")
    obj = repo / annex(repo, "contentlocation", key).strip()
    async with in_process(_open(repo)) as server:
        v4 = f"/git-annex/{uuid}/v4/key/{key}?clientuuid={CLIENT_UUID}"
        length, body = await _get_changing(server.port, v4, obj)
        assert length == len(CHANGING)
        assert body == CHANGING[:-1]  # spec 5.2: invalid, said by one byte less
        length, body = await _get_changing(server.port, f"/git-annex/{uuid}/key/{key}", obj)
        assert (length, body) == (len(CHANGING), CHANGING)  # spec 5.3: never shortened
