"""Payload bytes straight from the page cache to the peer (``sendfile(2)``).

Theory of operation
-------------------
A P2P GET's payload (spec 6.7) and a PUT's are an object file's bytes
unchanged.  Read into Python and written out again they cost two
copies, a ``bytes`` per chunk and a thread hand-off per read; ``sendfile``
moves them from the page cache to the socket or pipe inside the kernel.
``send_range`` does that over the transports that allow it and says so
before anything is written (``kind``), so a caller that frames the bytes
can choose its path first (``runtime.Channel.send_file``):

- a plain socket (TCP, unix): ``loop.sendfile`` (asyncio's native path: it
  waits for the transport's buffer to empty, then calls ``os.sendfile`` as
  the socket becomes writable);
- a pipe transport (``p2pstdio``'s stdout: a pipe, or a socket when sshd
  hands one): ``os.sendfile`` into it (Linux takes any output descriptor),
  after the transport's buffer has emptied, waiting for room with
  ``loop.add_writer``;
- anything else (TLS encrypts in user space, in-process streams have no
  descriptor): ``kind`` is None and the caller reads and writes as before.

Rules:

- The bytes on the wire are the same either way: ``count`` bytes of the file
  from ``offset``, or an error.  A file that ends early raises
  ``ConnectionError`` ("shrank"): the caller cannot pad, the peer sees a cut.
- The caller owns the stream while the range is sent (one P2P request at a
  time; an HTTP body has one writer), so nothing else writes meanwhile.
- The range goes in steps of ``STEP`` bytes; each step must finish by the
  caller's ``deadline()`` (the pace a transfer must keep: ``limits.Pace``)
  and is reported to ``moved`` (pace, progress).  A step is the unit the
  read-and-write paths used, so a slow reader is cut exactly as before.
- Validity is the caller's, unchanged: ``sendfile`` reads the file when it
  sends, as ``read`` did, so the size-and-mtime check around the send still
  tells whether what went out was the content the key names.

Cost taken on: the file is read on the event loop's thread, so a page not in
the cache blocks the loop for one step's disk read (aiohttp's
``FileResponse`` makes the same trade).  Not used by the p2phttp server:
there the git-annex client took ~1 s longer per GiB against it (see the
commit that took it out).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from typing import BinaryIO

logger = logging.getLogger(__name__)

STEP = 1 << 20  # bytes per step: the chunk the read-and-write paths move


class Kind(enum.Enum):
    SOCKET = "socket"
    PIPE = "pipe"


def kind(transport: asyncio.BaseTransport | None) -> Kind | None:
    """How ``send_range`` can use ``transport``; None: not at all."""
    if transport is None or transport.is_closing():
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None  # TLS: the bytes must pass through the encryption
    if transport.get_extra_info("socket") is not None:
        return Kind.SOCKET if isinstance(transport, asyncio.Transport) else None
    pipe = transport.get_extra_info("pipe")
    if pipe is not None and isinstance(transport, asyncio.WriteTransport):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            mode = os.fstat(pipe.fileno()).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                return Kind.PIPE
    return None


async def send_range(
    transport: asyncio.WriteTransport,
    f: BinaryIO,
    offset: int,
    count: int,
    *,
    deadline: Callable[[], float],
    moved: Callable[[int], None],
    drain: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Send ``count`` bytes of ``f`` from ``offset`` (``kind(transport)`` must not be None).

    ``drain`` empties the transport's buffer for the pipe path (a
    ``StreamWriter.drain``); the socket path does not need it.

    Raises:
        TimeoutError: a step did not finish by ``deadline()``.
        ConnectionError: the peer went away, or the file shrank.
        ValueError: ``transport`` cannot be used (``kind`` is None).
    """
    how = kind(transport)
    if how is None:
        raise ValueError("sendfile is not possible on this transport")
    if how is Kind.PIPE:
        await _flush(transport, drain, deadline)
    loop = asyncio.get_running_loop()
    sent = 0
    while sent < count:
        n = min(STEP, count - sent)
        async with asyncio.timeout_at(deadline()):
            if how is Kind.SOCKET:
                done = await _socket_step(loop, transport, f, offset + sent, n)
            else:
                done = await _pipe_step(loop, transport, f, offset + sent, n)
        if done < n:
            raise ConnectionError(f"{getattr(f, 'name', 'file')} shrank while being sent")
        sent += done
        moved(done)


async def _socket_step(loop: asyncio.AbstractEventLoop, transport: asyncio.WriteTransport,
                       f: BinaryIO, offset: int, n: int) -> int:  # fmt: skip
    if transport.is_closing():
        raise ConnectionResetError("the connection is closed")
    try:
        return await loop.sendfile(transport, f, offset, n, fallback=False)
    except RuntimeError as e:  # asyncio's word for "not possible here" or "closing"
        raise ConnectionError(f"sendfile failed: {e}") from e


async def _pipe_step(loop: asyncio.AbstractEventLoop, transport: asyncio.WriteTransport,
                     f: BinaryIO, offset: int, n: int) -> int:  # fmt: skip
    """Up to ``n`` bytes into the pipe; fewer only at the end of the file."""
    fd = transport.get_extra_info("pipe").fileno()
    done = 0
    while done < n:
        if transport.is_closing():
            raise BrokenPipeError("the pipe is closed")
        try:
            sent = os.sendfile(fd, f.fileno(), offset + done, n - done)
        except BlockingIOError:
            await _writable(loop, fd)
            continue
        if sent == 0:
            break  # end of file
        done += sent
    return done


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def _flush(transport: asyncio.WriteTransport, drain: Callable[[], Awaitable[None]] | None,
                 deadline: Callable[[], float]) -> None:  # fmt: skip
    """Wait until the transport has written everything it holds (a DATA line)."""
    if not transport.get_write_buffer_size():
        return
    if drain is None:
        raise ValueError("a pipe transport with buffered bytes needs drain")
    low, high = transport.get_write_buffer_limits()
    transport.set_write_buffer_limits(high=0, low=0)  # drain now waits for empty
    try:
        async with asyncio.timeout_at(deadline()):
            await drain()
    finally:
        transport.set_write_buffer_limits(high=high, low=low)


__all__ = ["STEP", "Kind", "kind", "send_range"]
