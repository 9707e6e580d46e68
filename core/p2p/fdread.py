"""A descriptor read by hand: requests on the event loop, a payload on a thread.

Theory of operation
-------------------
The p2pstdio server reads its requests from stdin (a pipe from ssh, or a
socket).  Through asyncio's pipe transport and ``StreamReader`` a payload
costs three copies in user space before it reaches a file (the transport's
fresh ``bytes`` per read, the reader's buffer, the slice ``read`` returns)
and an event-loop round per 256 KiB.  ``FdReader`` reads the descriptor
itself and never reads ahead, so whatever the protocol machine has not been
fed is still in the descriptor:

- ``read(n)`` (on the loop) returns what is there, up to ``n`` bytes, waiting
  for the descriptor with ``loop.add_reader``; ``b""`` at EOF.  With
  ``at_eof`` it is the part of ``asyncio.StreamReader`` that
  ``runtime.Channel`` uses.
- ``read_into(view, timeout)`` (on one worker thread, while nothing awaits
  ``read``) reads straight into the caller's buffer (``os.readv``): a PUT's
  payload goes from the pipe into the receiver's reused buffers
  (``runtime.Channel.receive_payload``, ``objects.Incoming.write_from``).
  The caller bounds each read by what the payload still owes, so the line
  after it stays in the descriptor for ``read``.  ``TimeoutError`` when
  nothing came for ``timeout`` seconds; ``wake()`` (from the loop, on
  cancellation) ends it with ``ReadInterrupted`` before its next read.

No asyncio transport ever reads this descriptor, so there is no read-ahead
to take back and no flow control to pause: the two readers take turns, and
``runtime.Channel`` awaits the worker before it reads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import threading

from core.errors import RemoteUnavailable


class ReadInterrupted(RemoteUnavailable):
    """A payload read was ended by ``wake`` (the receiving task was cancelled)."""


def _ready(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class FdReader:
    """Reads ``fd``, which it owns (made non-blocking; closed by ``close``)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        os.set_blocking(fd, False)
        self._wake_r, self._wake_w = os.pipe()
        for end in (self._wake_r, self._wake_w):
            os.set_blocking(end, False)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self._poll.register(self._wake_r, select.POLLIN)
        self._woken = threading.Event()
        self._busy = False  # a worker is in read_into: close leaves the descriptors
        self._eof = False
        self._closed = False

    def at_eof(self) -> bool:
        return self._eof

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (``-1``: up to 256 KiB), ``b""`` at EOF.

        Raises:
            OSError: the descriptor failed.
        """
        size = n if n > 0 else 1 << 18
        while not self._eof:
            try:
                data = os.read(self._fd, size)
            except BlockingIOError:
                await self._readable()
                continue
            if not data:
                self._eof = True
            return data
        return b""

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self._fd, _ready, ready)
        try:
            await ready
        finally:
            loop.remove_reader(self._fd)

    def arm(self) -> None:
        """Forget an earlier ``wake`` (on the loop, before a worker starts)."""
        self._woken.clear()
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 64):
                pass

    def read_into(self, view: memoryview, timeout: float) -> int:
        """Bytes read into ``view`` (0 at EOF), on a worker thread.

        Raises:
            TimeoutError: nothing came for ``timeout`` seconds.
            ReadInterrupted: ``wake`` was called.
            OSError: the descriptor failed.
        """
        self._busy = True
        try:
            while not self._woken.is_set():
                try:
                    n = os.readv(self._fd, [view])
                except BlockingIOError:
                    ready = self._poll.poll(math.ceil(timeout * 1000))
                    if not ready:
                        raise TimeoutError(f"no bytes for {timeout:g}s") from None
                    if any(fd == self._wake_r for fd, _ in ready):
                        break
                    continue
                if not n:
                    self._eof = True
                return n
            raise ReadInterrupted("payload read interrupted")
        finally:
            self._busy = False

    def wake(self) -> None:
        """End a ``read_into`` running or waiting on another thread (never raises)."""
        self._woken.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Close the descriptors; safe to repeat.  A worker still reading (it
        did not end within the caller's bound) keeps them until the process ends."""
        if self._closed or self._busy:
            return
        self._closed = True
        for fd in (self._fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


__all__ = ["FdReader", "ReadInterrupted"]
