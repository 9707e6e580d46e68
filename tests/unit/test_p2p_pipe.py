"""The in-process pipe (``core.p2p.pipe``): bytes, back pressure, hang-ups, as a socket pair."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from core.errors import RemoteUnavailable
from core.p2p import AuthSuccess, ConnectionClosed, Version, client, server
from core.p2p.pipe import memory_streams
from core.p2p.runtime import Channel


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 10))


def test_bytes_both_ways_in_order() -> None:
    async def go() -> None:
        (ra, wa), (rb, wb) = memory_streams()
        wa.write(b"one ")
        wa.write(memoryview(b"two"))
        await wa.drain()
        wb.write(bytearray(b"back"))
        assert await rb.read(100) == b"one "
        assert await rb.read(100) == b"two"
        assert await ra.read(100) == b"back"

    run(go)


def test_a_writer_waits_while_the_reader_is_full() -> None:
    """Back pressure: past twice the limit the writer's drain waits until the
    reader is down to the limit, so nothing grows without bound."""

    async def go() -> None:
        (_, wa), (rb, _) = memory_streams(limit=100)
        wa.write(b"x" * 250)
        drained = asyncio.ensure_future(wa.drain())
        await asyncio.sleep(0.01)
        assert not drained.done()
        assert len(await rb.read(100)) == 100  # 150 left: still above the limit
        await asyncio.sleep(0.01)
        assert not drained.done()
        await rb.read(100)
        await asyncio.wait_for(drained, 1)

    run(go)


def test_a_hang_up_gives_eof_after_the_data_and_fails_the_other_writer() -> None:
    async def go() -> None:
        (ra, wa), (rb, wb) = memory_streams()
        wa.write(b"last words")
        wa.close()
        await wa.wait_closed()
        assert await rb.read() == b"last words"  # then EOF
        assert await ra.read() == b""
        wb.write(b"nobody listens")
        with pytest.raises(ConnectionError):
            await wb.drain()
        await asyncio.wait_for(wb.wait_closed(), 1)

    run(go)


def test_a_paused_writer_is_woken_by_the_hang_up() -> None:
    async def go() -> None:
        (_, wa), (_, wb) = memory_streams(limit=10)
        wa.write(b"x" * 30)
        drained = asyncio.ensure_future(wa.drain())
        await asyncio.sleep(0.01)
        assert not drained.done()
        wb.close()
        await asyncio.wait_for(asyncio.gather(drained, return_exceptions=True), 1)

    run(go)


def test_p2p_channels_over_the_pipe() -> None:
    """The P2P runtime sees a pipe as a socket: messages, then a lost link, then EOF."""

    async def go() -> None:
        (ra, wa), (rb, wb) = memory_streams()
        ours = Channel(client(), ra, wa, read_timeout=5)
        theirs = Channel(server(), rb, wb, read_timeout=5)
        await theirs.send(AuthSuccess("u1"))
        assert await ours.next_event() == AuthSuccess("u1")
        await theirs.aclose()
        with pytest.raises(RemoteUnavailable):
            await ours.send(Version(4))
        assert isinstance(await ours.next_event(), ConnectionClosed)
        await ours.aclose()

    run(go)


def test_a_written_chunk_is_read_whole_and_uncopied_or_in_parts() -> None:
    async def go() -> None:
        (_, wa), (rb, _) = memory_streams()
        chunk = b"x" * 1000
        wa.write(chunk)
        assert await rb.read(4096) is chunk  # the object itself: no copy
        wa.write(b"0123456789")
        wa.write(b"ab")
        assert await rb.read(4) == b"0123"
        assert await rb.read(100) == b"456789"  # the rest of that chunk
        wa.close()
        assert await rb.read() == b"ab"  # to EOF
        assert rb.at_eof()

    run(go)


def test_line_readers_refuse_rather_than_miss_bytes() -> None:
    async def go() -> None:
        (_, wa), (rb, _) = memory_streams()
        wa.write(b"line\n")
        with pytest.raises(NotImplementedError):
            await rb.readline()
        assert await rb.read(100) == b"line\n"

    run(go)
