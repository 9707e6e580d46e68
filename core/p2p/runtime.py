"""The asyncio pump between a byte stream and a sans-IO ``Connection``.

Theory of operation
-------------------
``core.p2p`` (see its package docstring, "Adapter contract") decides *what*
goes on the wire; this module only moves bytes, with a timeout around every
network wait (style 5) and the close in ``finally``.  A ``Channel`` owns one
``asyncio.StreamReader``/``StreamWriter`` pair (a subprocess's stdout/stdin,
a TCP socket, or our own stdin/stdout) and the ``Connection`` talking over
it:

- ``next_event()`` returns the machine's next event, reading (and feeding)
  while the machine says ``NEED_DATA``; an event (a line, or a chunk of a
  payload) that takes longer than ``read_timeout`` to arrive raises
  ``P2PTimeout``, however its bytes trickle in.  EOF is fed as ``b""``, so the
  machine reports ``ConnectionClosed`` itself (spec 2.3, 8).
- ``send(*events)`` writes what ``Connection.send`` returns and drains with
  ``write_timeout``.
- ``aclose()`` closes the writer; it never raises and waits for the close a
  bounded time.

Content never goes through here whole: payloads travel as the chunks the
caller hands to ``send`` and the chunks ``next_event`` yields (spec 2.3),
or, over an ``fdread.FdReader``, ``receive_payload`` lets a sink on a
worker thread read a payload straight from the descriptor into its own
buffers (the machine still counts every byte).

Errors (style 4): ``P2PTimeout`` (a ``TimeoutError`` too) and
``ConnectionLost`` (an ``OSError``-ish "broken") are both
``RemoteUnavailable``: we could not talk to the peer, as opposed to the peer
saying no (``RemoteRefused``).  Protocol violations stay
``RemoteProtocolError`` from the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import BinaryIO, Protocol

from core.errors import RemoteUnavailable
from core.p2p import sendfile
from core.p2p.events import NEED_DATA, Event, Payload, Sentinel
from core.p2p.fdread import FdReader
from core.p2p.machine import Connection
from core.p2p.messages import Message

logger = logging.getLogger(__name__)

ReadInto = Callable[[memoryview], int]  # fills a leading part of the view; 0 at EOF
PayloadSink = Callable[[ReadInto, int], object]  # (read_into, count), on a worker thread

READ_SIZE = 1 << 18  # asyncio's transports read at most 256 KiB at a time
DEFAULT_READ_TIMEOUT = 120.0  # a peer silent this long is gone (style 5: finite)
DEFAULT_WRITE_TIMEOUT = 120.0
CLOSE_TIMEOUT = 5.0


class P2PTimeout(RemoteUnavailable, TimeoutError):
    """The peer did not send (or accept) bytes in time."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"peer silent for {seconds:g}s while {what}")
        self.what = what
        self.seconds = seconds


class ConnectionLost(RemoteUnavailable):
    """The transport broke (peer gone, pipe closed) while we used it."""


class ByteReader(Protocol):
    """What a ``Channel`` reads from: an ``asyncio.StreamReader``, or an
    ``fdread.FdReader`` (which can also hand a payload to a thread)."""

    async def read(self, n: int = -1) -> bytes: ...

    def at_eof(self) -> bool: ...


class Channel:
    """One ``Connection`` over one asyncio stream pair.

    Args:
        conn: the protocol machine (client or server).
        reader, writer: the byte stream.
        read_timeout: longest wait for the peer's next bytes.
        write_timeout: longest wait for a write to drain.
        peer: a name for logs and errors.
    """

    def __init__(
        self,
        conn: Connection,
        reader: ByteReader,
        writer: asyncio.StreamWriter,
        *,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        peer: str = "peer",
    ) -> None:
        self.conn = conn
        self.reader = reader
        self.writer = writer
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.peer = peer
        self._closed = False

    async def next_event(self, timeout: float | None = None) -> Event | Sentinel:
        """The next event or sentinel other than ``NEED_DATA``.

        Raises:
            P2PTimeout: nothing arrived within ``timeout`` (default
                ``read_timeout``).
            RemoteProtocolError: from the machine (terminal).
        """
        limit = self.read_timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + limit
        while True:
            ev = self.conn.next_event()
            if ev is not NEED_DATA:
                return ev
            self.conn.receive_data(await self._read(deadline, limit))

    async def _read(self, deadline: float, limit: float) -> bytes:
        """Whatever arrives before ``deadline``: the whole event is bounded, not
        each read, so a line trickled a byte at a time cannot last forever."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self.reader.read(READ_SIZE)
        except TimeoutError:
            raise P2PTimeout(f"waiting for {self.peer}", limit) from None
        except (ConnectionError, OSError) as e:
            logger.debug("%s: read failed: %s", self.peer, e)
            return b""  # the machine turns EOF into ConnectionClosed

    async def receive_payload(self, sink: PayloadSink) -> bool:
        """Hand the payload being received to ``sink`` on a worker thread, read
        straight from the descriptor into the sink's own buffer (an
        ``FdReader``); False, touching nothing, when this channel cannot (any
        other reader, EOF already seen): the payload then comes as
        ``Payload`` events.

        ``sink(read_into, count)`` calls ``read_into(view)`` for the payload's
        remaining ``count`` bytes; each call fills a leading part of ``view``
        and returns its length, 0 at EOF.  Reads never go past the payload,
        so the line after it stays for the machine; every byte read is
        counted by the machine even when ``sink`` fails, and what the sink
        did not take comes as ``Payload`` events after.

        Raises:
            P2PTimeout: the peer was silent for ``read_timeout`` mid-payload.
            Whatever ``sink`` raised.
        """
        reader = self.reader
        if not isinstance(reader, FdReader) or reader.at_eof():
            return False
        head = memoryview(self.conn.take_buffered_payload())
        left = self.conn.payload_unread
        if not head and not left:
            return False
        got = 0  # read from the descriptor; counted by the machine in finally

        def read_into(view: memoryview) -> int:
            nonlocal head, got
            if head:
                n = min(len(view), len(head))
                view[:n] = head[:n]
                head = head[n:]
                return n
            if got >= left:
                return 0
            n = reader.read_into(view[: left - got], self.read_timeout)
            got += n
            return n

        reader.arm()
        work = asyncio.get_running_loop().run_in_executor(None, sink, read_into, len(head) + left)
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:  # nothing may write the receiver's file after we return
            reader.wake()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await work
            raise
        except TimeoutError:
            raise P2PTimeout(f"waiting for {self.peer}", self.read_timeout) from None
        finally:
            self.conn.received_payload_length(got)
        return True

    async def send(self, *events: Message | Payload) -> None:
        """Put ``events`` on the wire in order and drain.

        Raises:
            LocalProtocolError: an illegal move (our bug).
            ConnectionLost: the transport is gone.
            P2PTimeout: the peer stopped reading.
        """
        for ev in events:
            data = self.conn.send(ev)
            if data:
                self.writer.write(data)
        await self.drain()

    async def send_file(self, f: BinaryIO, offset: int, count: int,
                        advance: Callable[[int], None] | None = None) -> None:  # fmt: skip
        """Send ``count`` payload bytes of ``f`` from ``offset`` (after our DATA).

        Straight from the page cache where the transport allows it
        (``sendfile``), else read in a thread and written chunk by chunk;
        the machine counts the bytes either way.  Every step must go out
        within ``write_timeout``.  ``advance`` is told each step's bytes.

        Raises:
            LocalProtocolError: ``count`` was not announced.
            ConnectionLost: the transport is gone, or the file shrank (a
                payload cannot be aborted in band, spec 2.3).
            P2PTimeout: the peer stopped reading.
        """
        self.conn.send_payload_length(count)
        step = advance or (lambda n: None)
        try:
            if sendfile.kind(self.writer.transport) is not None:
                loop = asyncio.get_running_loop()
                await sendfile.send_range(
                    self.writer.transport, f, offset, count,
                    deadline=lambda: loop.time() + self.write_timeout, moved=step,
                    drain=self.writer.drain,
                )  # fmt: skip
            else:
                await self._copy_file(f, offset, count, step)
        except TimeoutError:
            raise P2PTimeout(f"writing to {self.peer}", self.write_timeout) from None
        except (ConnectionError, OSError) as e:
            raise ConnectionLost(f"sending to {self.peer}: {e}") from e

    async def _copy_file(self, f: BinaryIO, offset: int, count: int,
                         advance: Callable[[int], None]) -> None:  # fmt: skip
        await asyncio.to_thread(f.seek, offset)
        while count:
            chunk = await asyncio.to_thread(f.read, min(sendfile.STEP, count))
            if not chunk:
                raise ConnectionError(f"{getattr(f, 'name', 'file')} shrank while being sent")
            count -= len(chunk)
            self.writer.write(chunk)
            await self.drain()
            advance(len(chunk))

    async def drain(self) -> None:
        if self.writer.is_closing():
            raise ConnectionLost(f"connection to {self.peer} is closed")
        try:
            async with asyncio.timeout(self.write_timeout):
                await self.writer.drain()
        except TimeoutError:
            raise P2PTimeout(f"writing to {self.peer}", self.write_timeout) from None
        except (ConnectionError, OSError) as e:
            raise ConnectionLost(f"connection to {self.peer} broke: {e}") from e

    async def send_raw(self, data: bytes) -> None:
        """Write bytes the machine already produced (an ``error_line``)."""
        self.writer.write(data)
        await self.drain()

    async def aclose(self) -> None:
        """Close the writer; bounded, never raises."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.writer.wait_closed()


__all__ = [
    "ByteReader", "CLOSE_TIMEOUT", "PayloadSink", "ReadInto", "DEFAULT_READ_TIMEOUT", "DEFAULT_WRITE_TIMEOUT", "Channel",
    "ConnectionLost", "P2PTimeout",
]  # fmt: skip
