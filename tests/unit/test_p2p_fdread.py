"""Payloads read on a thread (``core.p2p.fdread``, ``Channel.receive_payload``).

A server channel over real pipes (an ``FdReader`` on the requests), the peer's bytes
written by the test: the payload must reach the sink byte for byte whether
it was already buffered or still in the pipe, the line after it must reach
the machine, and an end, a silence or a cancellation mid-payload must leave
the sink's thread finished and the machine's count right.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from core.p2p import (
    AuthSuccess,
    CheckPresent,
    ConnectionClosed,
    Data,
    PayloadEnd,
    Put,
    PutFrom,
    Success,
    VersionOffered,
    server,
)
from core.p2p.fdread import FdReader
from core.p2p.runtime import Channel, P2PTimeout, ReadInto
from core.repo.key import Key

KEY = Key.parse("SHA256E-s10--" + "1" * 64)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 20))


class Peer:
    """The client's end of the pipe into the server: writes, and the EOF."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@asynccontextmanager
async def put_started(read_timeout: float = 5.0) -> AsyncIterator[tuple[Channel, Peer]]:
    """A server channel over pipes, through PUT-FROM; yields it and the client's end."""
    c2s_r, c2s_w = os.pipe()
    peer = Peer(c2s_w)
    s2c_r, s2c_w = os.pipe()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(s2c_w, "wb", buffering=0))  # fmt: skip
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    reader = FdReader(c2s_r)
    ch = Channel(server(), reader, writer, read_timeout=read_timeout)
    try:
        await ch.send(AuthSuccess("u"))
        peer.write(b"VERSION 1\n")
        offered = await ch.next_event()
        assert isinstance(offered, VersionOffered)
        await ch.send(offered.reply)
        peer.write(f"PUT f {KEY}\n".encode())
        assert isinstance(await ch.next_event(), Put)
        await ch.send(PutFrom(0))
        yield ch, peer
    finally:
        transport.close()
        reader.close()
        peer.close()
        os.close(s2c_r)


class Sink:
    """Takes the payload 3 bytes a read; remembers what and on which thread."""

    def __init__(self) -> None:
        self.got = bytearray()
        self.ended = threading.Event()

    def __call__(self, read_into: ReadInto, count: int) -> None:
        buf = memoryview(bytearray(3))
        try:
            while len(self.got) < count and (n := read_into(buf)):
                self.got += buf[:n]
        finally:
            self.ended.set()


def test_buffered_payload_and_the_lines_after_it() -> None:
    """Payload, VALID and the next request in one write: all already buffered."""

    async def go() -> None:
        async with put_started() as (ch, w):
            w.write(b"DATA 10\n0123456789VALID\nCHECKPRESENT " + str(KEY).encode() + b"\n")
            assert await ch.next_event() == Data(10)
            sink = Sink()
            assert await ch.receive_payload(sink)
            assert sink.got == b"0123456789"
            assert await ch.next_event() == PayloadEnd(True)
            await ch.send(Success())
            assert await ch.next_event() == CheckPresent(KEY)

    run(go)


def test_payload_from_the_pipe_stops_at_its_end() -> None:
    """Most of the payload arrives while the sink reads; the last piece shares a
    write with VALID and the next request, which must stay for the machine."""

    async def go() -> None:
        async with put_started() as (ch, w):
            w.write(b"DATA 10\n01")
            assert await ch.next_event() == Data(10)
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, w.write, b"2345")
            loop.call_later(0.10, w.write,
                            b"6789VALID\nCHECKPRESENT " + str(KEY).encode() + b"\n")  # fmt: skip
            sink = Sink()
            assert await ch.receive_payload(sink)
            assert sink.got == b"0123456789"
            assert await ch.next_event() == PayloadEnd(True)
            await ch.send(Success())
            assert await ch.next_event() == CheckPresent(KEY)

    run(go)


def test_eof_mid_payload_is_a_cut() -> None:
    async def go() -> None:
        async with put_started() as (ch, w):
            w.write(b"DATA 10\n0123")
            assert await ch.next_event() == Data(10)
            asyncio.get_running_loop().call_later(0.05, w.close)
            sink = Sink()
            assert await ch.receive_payload(sink)
            assert sink.got == b"0123"
            assert await ch.next_event() == ConnectionClosed(cut_short=True)

    run(go)


def test_silence_mid_payload_times_out() -> None:
    async def go() -> None:
        async with put_started(read_timeout=0.2) as (ch, w):
            w.write(b"DATA 10\n01")
            assert await ch.next_event() == Data(10)
            asyncio.get_running_loop().call_later(0.05, w.write, b"234")
            sink = Sink()
            with pytest.raises(P2PTimeout):
                await ch.receive_payload(sink)
            assert sink.got == b"01234" and sink.ended.is_set()
            assert ch.conn.payload_unread == 5  # what came was counted

    run(go)


def test_cancelled_mid_payload_leaves_no_thread_reading() -> None:
    async def go() -> None:
        async with put_started(read_timeout=30) as (ch, w):
            w.write(b"DATA 10\n01")
            assert await ch.next_event() == Data(10)
            sink = Sink()
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await ch.receive_payload(sink)
            assert sink.ended.is_set()  # woken, not left waiting 30 s on the pipe
            assert time.monotonic() - started < 5
            assert sink.got == b"01"

    run(go)


def test_without_a_descriptor_the_payload_comes_as_events() -> None:
    async def go() -> None:
        async with put_started() as (ch, w):
            ch.reader = asyncio.StreamReader()  # no descriptor: feeds the events path
            ch.reader.feed_data(b"DATA 10\n0123456789VALID\n")
            assert await ch.next_event() == Data(10)
            assert not await ch.receive_payload(Sink())
            ev = await ch.next_event()
            assert getattr(ev, "data", None) == b"0123456789"

    run(go)
