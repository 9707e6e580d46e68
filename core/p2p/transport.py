"""Byte streams for P2P sessions: a subprocess, a TCP socket, our own stdio.

Theory of operation
-------------------
Every transport ends up as a reader (``runtime.ByteReader``: an
``asyncio.StreamReader`` or an ``fdread.FdReader``) and an
``asyncio.StreamWriter`` wrapped in a ``Link``, so ``runtime.Channel`` and
everything above it does not care which one it is (spec 1: one message set,
three transports):

- ``open_subprocess``: the ssh transport's client side (spec 4.1): run
  ``ssh HOST "git-annex-shell 'p2pstdio' ..."`` (or any command) and talk
  over its stdin/stdout.  Its stdout is a pipe of ours read by an
  ``FdReader``, so a GET's payload goes from the pipe into the receiver's
  reused buffers on a thread (``Channel.receive_payload``), as a PUT's does
  on our server: no asyncio read-ahead, no copy per chunk.  ``aclose``
  closes stdin (the server exits 0 on EOF), then waits a bounded time and
  kills what is left, and closes the reader.
- ``open_tcp``: a networked peer (spec 4.2), with a connect timeout.
- ``stdio_link``: the ssh transport's server side: our stdin/stdout.
- ``stdio_server``: the same for the p2pstdio server, stdin read by hand
  (``fdread.FdReader``) where it is a pipe or a socket, so that a PUT's
  payload goes from the pipe into the receiver's buffers on a thread.
- ``ssh_command``: how git-annex builds the ssh command line (spec 4.1,
  12.2 step 1), honouring ``GIT_ANNEX_USE_GIT_SSH`` with ``GIT_SSH_COMMAND``
  or ``GIT_SSH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shlex
import socket
import stat
import sys
import threading
from dataclasses import dataclass

from core.errors import RemoteUnavailable
from core.p2p.fdread import FdReader
from core.p2p.runtime import CLOSE_TIMEOUT, ByteReader

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30.0
STREAM_LIMIT = 1 << 19  # the reader pauses its transport at twice this
PIPE_SIZE = 1 << 20  # fewer wake-ups per payload than the 64 KiB default


@dataclass
class Link:
    """An open byte stream, and the process behind it if any."""

    reader: ByteReader  # an asyncio.StreamReader, or an FdReader (a subprocess)
    writer: asyncio.StreamWriter
    name: str
    process: asyncio.subprocess.Process | None = None
    flusher: threading.Thread | None = None  # stdio relay still writing out

    async def aclose(self) -> None:
        """Close our end (what was written goes out first, bounded); reap the process
        (bounded, kills if needed). Never raises."""
        try:
            await _close_writer(self.writer)
            if self.flusher is not None:
                await asyncio.to_thread(self.flusher.join, CLOSE_TIMEOUT)
        finally:
            try:
                if self.process is not None:
                    await reap(self.process)
            finally:
                if isinstance(self.reader, FdReader):
                    self.reader.close()


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``; what was written goes out first (bounded). Never raises."""
    with contextlib.suppress(Exception):
        writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()


@dataclass
class StdioServer:
    """Our stdin/stdout for the p2pstdio server (``stdio_server``)."""

    reader: ByteReader
    writer: asyncio.StreamWriter
    fallback: Link | None = None  # stdin or stdout a regular file: ``stdio_link``'s

    async def aclose(self) -> None:
        """Close both ends (what was written goes out first, bounded). Never raises."""
        if self.fallback is not None:
            await self.fallback.aclose()
            return
        try:
            await _close_writer(self.writer)
        finally:
            if isinstance(self.reader, FdReader):
                self.reader.close()


async def reap(proc: asyncio.subprocess.Process) -> None:
    """Wait for ``proc`` to end, killing it after CLOSE_TIMEOUT, or at once when
    the wait is cancelled.  Never raises (but a cancellation passes through).

    A process that ended unseen (asyncio not told yet) is not signalled:
    ``Process.kill`` checks with ``waitpid`` first, and raises
    ProcessLookupError once asyncio has closed it.
    """
    if proc.returncode is not None:
        return
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await proc.wait()
    except TimeoutError:
        pass
    finally:  # timed out, or cancelled: it must end all the same
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    if proc.returncode is None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await proc.wait()


async def open_subprocess(argv: list[str], env: dict[str, str] | None = None) -> Link:
    """Run ``argv`` and talk over its stdin/stdout (stderr passes through).

    Raises:
        RemoteUnavailable: the program could not be started.
    """
    ours, theirs = os.pipe2(os.O_CLOEXEC)  # its stdout, read by hand (FdReader)
    try:
        grow_pipe(ours)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=theirs, env=env,
        )  # fmt: skip
    except BaseException as e:
        os.close(ours)
        if isinstance(e, OSError):
            raise RemoteUnavailable(f"cannot run {argv[0]}: {e}") from e
        raise
    finally:
        os.close(theirs)  # the child has its copy: EOF comes when it exits
    assert proc.stdin is not None
    grow_pipe(proc.stdin.transport.get_extra_info("pipe").fileno())
    return Link(FdReader(ours), proc.stdin, shlex.join(argv[:3]), proc)


async def open_tcp(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> Link:
    """Connect to a networked P2P server.

    Raises:
        RemoteUnavailable: refused, unreachable or timed out.
    """
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
    except TimeoutError:
        raise RemoteUnavailable(f"connecting to {host}:{port} timed out") from None
    except OSError as e:
        raise RemoteUnavailable(f"cannot connect to {host}:{port}: {e}") from e
    return Link(reader, writer, f"{host}:{port}")


async def stdio_link() -> Link:
    """Our own stdin/stdout as a stream pair (the p2pstdio server side).

    Pipes, sockets and terminals are used directly; anything else (a regular
    file, as in ``annexsync p2pstdio ... <requests >replies``) goes through a
    socket pair fed by two daemon threads.
    """
    loop = asyncio.get_running_loop()
    in_fd, out_fd = sys.stdin.fileno(), sys.stdout.fileno()
    if not (_streamable(in_fd) and _streamable(out_fd)):
        ours, theirs = socket.socketpair()
        threading.Thread(target=_pump_in, args=(in_fd, theirs), daemon=True).start()
        flusher = threading.Thread(target=_pump_out, args=(theirs, out_fd), daemon=True)
        flusher.start()
        reader, writer = await asyncio.open_connection(sock=ours, limit=STREAM_LIMIT)
        return Link(reader, writer, "stdio", flusher=flusher)
    for fd in (in_fd, out_fd):
        grow_pipe(fd)
    reader = asyncio.StreamReader(limit=STREAM_LIMIT)
    protocol = asyncio.StreamReaderProtocol(reader)
    stdin = os.fdopen(os.dup(in_fd), "rb", buffering=0)
    await loop.connect_read_pipe(lambda: protocol, stdin)
    return Link(reader, await _stdout_writer(out_fd), "stdio")


async def stdio_server() -> StdioServer:
    """Our own stdin/stdout for the p2pstdio server: as ``stdio_link``, but a
    pipe or socket on stdin is read by an ``FdReader`` (no asyncio transport),
    so ``runtime.Channel.receive_payload`` can take a PUT's payload on a thread."""
    in_fd, out_fd = sys.stdin.fileno(), sys.stdout.fileno()
    if not (_streamable(in_fd) and _streamable(out_fd)):
        link = await stdio_link()
        return StdioServer(link.reader, link.writer, link)
    for fd in (in_fd, out_fd):
        grow_pipe(fd)
    reader = FdReader(os.dup(in_fd))
    try:
        return StdioServer(reader, await _stdout_writer(out_fd))
    except BaseException:
        reader.close()
        raise


async def _stdout_writer(out_fd: int) -> asyncio.StreamWriter:
    """A stream writer on a duplicate of ``out_fd`` (a pipe, socket or terminal)."""
    loop = asyncio.get_running_loop()
    stdout = os.fdopen(os.dup(out_fd), "wb", buffering=0)
    transport, wprotocol = await loop.connect_write_pipe(_WritePipeProtocol, stdout)
    return asyncio.StreamWriter(transport, wprotocol, None, loop)


class _WritePipeProtocol(asyncio.streams.FlowControlMixin):
    """A write pipe's protocol that ``StreamWriter.wait_closed`` can wait on.

    asyncio's ``FlowControlMixin`` has no close waiter, so ``wait_closed``
    raised and the process could exit with replies still in the transport's
    buffer.  A closing pipe transport writes its buffer out before it calls
    ``connection_lost``, so that is when everything written has gone.
    """

    def __init__(self) -> None:
        super().__init__()
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self._closed.done():
            self._closed.set_result(None)

    def _get_close_waiter(self, stream: asyncio.StreamWriter) -> asyncio.Future[None]:
        return self._closed  # what StreamWriter.wait_closed awaits


def grow_pipe(fd: int) -> None:
    """Ask for a PIPE_SIZE buffer on a pipe (Linux); anything else is left alone."""
    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def _streamable(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def _pump_in(fd: int, sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := os.read(fd, STREAM_LIMIT):
            sock.sendall(data)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def _pump_out(sock: socket.socket, fd: int) -> None:
    with contextlib.suppress(OSError):
        while data := sock.recv(STREAM_LIMIT):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]


def ssh_command(
    host: str,
    remote_command: str,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> list[str]:
    """The argv that runs ``remote_command`` on ``host`` as git-annex would.

    With ``GIT_ANNEX_USE_GIT_SSH=1``, ``GIT_SSH_COMMAND`` (a shell snippet)
    or ``GIT_SSH`` (a program) replaces ``ssh``, as for git itself.
    """
    e = os.environ if env is None else env
    opts = ["-p", str(port)] if port is not None else []
    if e.get("GIT_ANNEX_USE_GIT_SSH") == "1":
        if e.get("GIT_SSH_COMMAND"):
            snippet = e["GIT_SSH_COMMAND"] + ' "$@"'
            return ["sh", "-c", snippet, "ssh", *opts, host, remote_command]
        if e.get("GIT_SSH"):
            return [e["GIT_SSH"], *opts, host, remote_command]
    return ["ssh", "-T", *opts, host, remote_command]


__all__ = [
    "CONNECT_TIMEOUT", "Link", "StdioServer", "open_subprocess", "open_tcp", "ssh_command",
    "stdio_link", "stdio_server",
]  # fmt: skip
