"""Start writing a file's dirty pages to disk while more of it arrives.

Theory of operation
-------------------
A received object is kept only after one ``fdatasync`` (``objects.Incoming.commit``).
Left alone, the kernel holds most of a big file's pages dirty until then, so
that call writes them all while the transfer waits: ~0.3-0.5 s a GiB on the
project machine, after the last byte came.  ``Writeback`` asks for each
``STEP`` of the file behind the writer with ``sync_file_range(2)``'s
``SYNC_FILE_RANGE_WRITE``: the disk writes while the next bytes arrive, and
the final ``fdatasync`` finds little left (measured: 0.30-0.47 s -> 0.00-0.03 s
for 1 GiB written in 1 MiB steps).

This is a hint, never a guarantee: it does not wait for the disk and does not
flush metadata, so ``fdatasync`` stays where it is.  Where the call does not
exist (not Linux, no libc through ctypes) or fails, ``Writeback`` does
nothing; the caller's writes are never affected.  Call ``wrote`` from the one
thread that writes the file.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable

logger = logging.getLogger(__name__)

STEP = 8 << 20  # bytes written before their writeback is started
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _load() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range``, looked up once, on first use (ctypes costs an import)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's
        fn = libc.sync_file_range  # (ctypes.util.find_library would run ldconfig)
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


class Writeback:
    """Starts the writeback of ``fd``'s bytes from ``start`` on, ``STEP`` at a time."""

    def __init__(self, fd: int, start: int) -> None:
        self._fd = fd
        self._started = start  # writeback asked for up to here
        self._end = start  # written up to here
        self._call = _load()

    @property
    def requested(self) -> int:
        """Where the writeback asked for so far ends (the start until a STEP is written)."""
        return self._started

    def wrote(self, n: int) -> None:
        """``n`` more bytes were written at the end; maybe start their writeback."""
        self._end += n
        if self._call is None or self._end - self._started < STEP:
            return
        if self._call(self._fd, self._started, self._end - self._started,
                      _SYNC_FILE_RANGE_WRITE) != 0:  # fmt: skip
            import ctypes

            logger.debug("sync_file_range: %s", os.strerror(ctypes.get_errno()))
            self._call = None  # not on this file system: the final fdatasync does it all
            return
        self._started = self._end


__all__ = ["STEP", "Writeback"]
