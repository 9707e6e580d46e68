"""``core.p2p.sendfile`` over a real loopback socket and a real pipe.

The bytes that arrive are exactly the file's range, in order with what the
transport already held and what is written after; a file shorter than the
range is a cut (an error), never padding; transports it cannot use say so
before anything is written.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.p2p import sendfile

DATA = os.urandom(3 * sendfile.STEP + 12345)  # several steps and a ragged end


@pytest.fixture
def source(tmp_path: Path) -> Path:
    p = tmp_path / "object"
    p.write_bytes(DATA)
    return p


def _far() -> float:
    return asyncio.get_running_loop().time() + 20


Send = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _over_socket(send: Send) -> bytes:
    """What a loopback TCP peer receives while ``send`` writes to it."""
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.set_result(await reader.read())
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await send(writer)
        finally:
            writer.close()
            await writer.wait_closed()
        async with asyncio.timeout(20):
            return await got


async def _over_pipe(send: Send) -> bytes:
    """What the reading end of a pipe receives while ``send`` writes to it."""
    return await _over_pipe_transport(send, *os.pipe())


async def _over_stdout_socket(send: Send) -> bytes:
    """The same through a pipe transport over a socket (stdout as sshd may hand it)."""
    ours, theirs = socket.socketpair()
    return await _over_pipe_transport(send, theirs.detach(), ours.detach())


async def _over_pipe_transport(send: Send, rfd: int, wfd: int) -> bytes:
    chunks: list[bytes] = []

    def drain_pipe() -> None:
        while chunk := os.read(rfd, 1 << 16):
            chunks.append(chunk)
        os.close(rfd)

    reader_thread = threading.Thread(target=drain_pipe)
    reader_thread.start()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(wfd, "wb", buffering=0))
    writer = asyncio.StreamWriter(transport, protocol, None, loop)  # type: ignore[arg-type]
    try:
        await send(writer)
    finally:
        writer.close()
        await asyncio.to_thread(reader_thread.join, 20)
    return b"".join(chunks)


def _range_between(source: Path, offset: int, count: int) -> Send:
    async def send(writer: asyncio.StreamWriter) -> None:
        assert sendfile.kind(writer.transport) is not None
        writer.write(b"DATA %d\n" % count)  # still buffered when the range starts
        with source.open("rb") as f:
            await sendfile.send_range(writer.transport, f, offset, count, deadline=_far,
                                      moved=lambda n: None, drain=writer.drain)  # fmt: skip
        writer.write(b"VALID\n")
        await writer.drain()

    return send


@pytest.mark.asyncio
@pytest.mark.parametrize("over", [_over_socket, _over_pipe, _over_stdout_socket],
                         ids=["socket", "pipe", "stdout-socket"])  # fmt: skip
@pytest.mark.parametrize("offset", [0, 7])
async def test_the_range_arrives_whole_and_in_order(
    source: Path, over: Callable[[Send], Awaitable[bytes]], offset: int
) -> None:
    count = len(DATA) - offset
    got = await over(_range_between(source, offset, count))
    assert got == b"DATA %d\n" % count + DATA[offset:] + b"VALID\n"


@pytest.mark.asyncio
@pytest.mark.parametrize("over", [_over_socket, _over_pipe], ids=["socket", "pipe"])
async def test_a_file_shorter_than_the_range_is_a_cut_not_padding(
    source: Path, over: Callable[[Send], Awaitable[bytes]]
) -> None:
    moved: list[int] = []

    async def send(writer: asyncio.StreamWriter) -> None:
        with source.open("rb") as f, pytest.raises(ConnectionError, match="shrank"):
            await sendfile.send_range(writer.transport, f, 0, len(DATA) + 1, deadline=_far,
                                      moved=moved.append, drain=writer.drain)  # fmt: skip

    got = await over(send)
    assert got == DATA  # what there was, and nothing made up after it
    assert sum(moved) < len(DATA) + 1


@pytest.mark.asyncio
async def test_a_reader_that_stops_is_cut_at_the_deadline(source: Path, tmp_path: Path) -> None:
    rfd, wfd = os.pipe()  # nobody reads rfd
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(wfd, "wb", buffering=0))
    try:
        with source.open("rb") as f, pytest.raises(TimeoutError):
            await sendfile.send_range(transport, f, 0, len(DATA),  # type: ignore[arg-type]
                                      deadline=lambda: loop.time() + 0.2, moved=lambda n: None)
    finally:
        transport.close()
        os.close(rfd)


@pytest.mark.asyncio
async def test_transports_without_a_descriptor_path_are_refused_up_front(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    with open(os.devnull, "wb", buffering=0) as devnull:  # a character device, not a pipe
        transport, _ = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, devnull)
        try:
            assert sendfile.kind(transport) is None
            with pytest.raises(ValueError):
                await sendfile.send_range(transport, devnull, 0, 1,  # type: ignore[arg-type]
                                          deadline=_far, moved=lambda n: None)
        finally:
            transport.close()
    assert sendfile.kind(None) is None
