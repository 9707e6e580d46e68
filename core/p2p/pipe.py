"""An in-process byte pipe with asyncio's stream interface: a socket pair minus the kernel.

Theory of operation
-------------------
A long-running gateway (``core.p2phttp.proxy``) talks P2P to sessions in its
own process: the HTTP handler to a ``GatewaySession``, the gateway to each
local node's ``serving.Session``.  Every byte of content crosses two such
links, so a socket pair there costs a send and a receive system call per
chunk, two kernel copies and an event-loop wake-up per 256 KiB read.  Both
ends run on the same event loop, so ``memory_streams`` joins them directly:

- ``write`` hands the bytes to the other end's reader at once, and that
  reader's ``read`` returns the written ``bytes`` objects themselves (or a
  leading part of one), so a chunk of content crosses the pipe uncopied.
  The reader serves ``read`` only, all a P2P channel uses; its line readers
  refuse, rather than miss bytes kept outside their buffer.
- Flow control is the reader's own: past twice its ``limit`` it pauses
  "reading", which here pauses the other end's writer, so ``drain`` waits
  exactly as on a socket whose peer stopped reading, and resumes once the
  reader is down to ``limit``.  Nothing grows without bound.
- ``close`` (either end) ends both directions, like a socket whose peer
  hung up: the other end reads what was already written, then EOF; both
  ends' protocols see the connection lost on the next loop iteration (as
  asyncio's transports report it), which wakes a paused writer; a write
  after that is dropped and ``drain`` fails, so ``runtime.Channel`` reports
  ``ConnectionLost``.

The protocol on top is unchanged (the same ``Connection`` machines parse and
check every line), so the sessions cannot tell this from a socket.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any, NoReturn, SupportsIndex

STREAM_LIMIT = 1 << 20  # a writer waits once the reader holds twice this


class _PipeEnd(asyncio.Transport):
    """One end: writes go to the other end's protocol, reads come from ours."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 protocol: asyncio.StreamReaderProtocol) -> None:  # fmt: skip
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self.other: _PipeEnd | None = None
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        other = self.other
        if self._closing or other is None or other._closing or not data:
            return  # the other end hung up: drain says so
        other._protocol.data_received(data if type(data) is bytes else bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False  # half-close is not needed by P2P; close ends both ways

    def pause_reading(self) -> None:
        """Our reader is full: the other end's writer waits."""
        if self.other is not None and not self.other._closing:
            self.other._protocol.pause_writing()

    def resume_reading(self) -> None:
        if self.other is not None and not self.other._closing:
            self.other._protocol.resume_writing()

    def is_reading(self) -> bool:
        return not self._closing

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._end()
        other = self.other
        if other is not None and not other._closing:
            other._protocol.eof_received()  # what was written stays readable, then EOF
            other._end()

    def _end(self) -> None:
        self._closing = True
        self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0  # nothing is held here: the bytes are in the other end's reader

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class _ChunkReader(asyncio.StreamReader):
    """A ``StreamReader`` keeping the written chunks whole (module docstring).

    Built on the base class's waiter, EOF, exception and pause state (the
    same that its own ``read`` uses), with ``held`` bytes counted for flow
    control in place of its buffer's length.
    """

    # the base class's state this reader shares (asyncio/streams.py)
    _eof: bool
    _paused: bool
    _exception: BaseException | None
    _transport: asyncio.ReadTransport | None
    _limit: int

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self._chunks: deque[bytes] = deque()
        self._start = 0  # bytes of the first chunk already read
        self._held = 0

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        assert not self._eof, "feed_data after feed_eof"
        chunk = data if isinstance(data, bytes) else bytes(data)
        if not chunk:
            return
        self._chunks.append(chunk)
        self._held += len(chunk)
        self._wakeup_waiter()  # type: ignore[attr-defined]
        if self._transport is not None and not self._paused and self._held > 2 * self._limit:
            self._transport.pause_reading()
            self._paused = True

    async def read(self, n: int = -1) -> bytes:
        if n < 0:  # to EOF, as StreamReader.read(-1)
            return b"".join([chunk async for chunk in self._to_eof()])
        if self._exception is not None:
            raise self._exception
        if n == 0:
            return b""
        if not self._chunks and not self._eof:
            await self._wait_for_data("read")  # type: ignore[attr-defined]
        if not self._chunks:
            return b""
        first, start = self._chunks[0], self._start
        if len(first) - start <= n:
            self._chunks.popleft()
            self._start = 0
            data = first[start:] if start else first
        else:
            self._start = start + n
            data = first[start : start + n]
        self._held -= len(data)
        self._maybe_resume_transport()
        return data

    async def _to_eof(self) -> AsyncIterator[bytes]:
        while chunk := await self.read(self._limit):
            yield chunk

    def _maybe_resume_transport(self) -> None:
        if self._paused and self._held <= self._limit and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def at_eof(self) -> bool:
        return bool(self._eof) and not self._chunks

    async def readline(self) -> NoReturn:
        raise NotImplementedError("an in-process pipe serves read() only")

    async def readuntil(self, separator: Any = b"\n") -> NoReturn:
        raise NotImplementedError("an in-process pipe serves read() only")

    async def readexactly(self, n: int) -> NoReturn:
        raise NotImplementedError("an in-process pipe serves read() only")


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def memory_streams(limit: int = STREAM_LIMIT) -> tuple[Streams, Streams]:
    """Two connected (reader, writer) pairs on the running loop (module docstring)."""
    loop = asyncio.get_running_loop()
    ends: list[_PipeEnd] = []
    streams: list[Streams] = []
    for _ in range(2):
        reader = _ChunkReader(limit, loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        end = _PipeEnd(loop, protocol)
        protocol.connection_made(end)
        ends.append(end)
        streams.append((reader, asyncio.StreamWriter(end, protocol, reader, loop)))
    ends[0].other, ends[1].other = ends[1], ends[0]
    return streams[0], streams[1]


__all__ = ["STREAM_LIMIT", "memory_streams"]
