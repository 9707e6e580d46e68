"""One running instance per config directory, and talking to it.

Theory of operation
-------------------
The running instance holds an exclusive ``flock`` on ``instance.lock`` in its
config directory (``InstanceLock``; flock, not fcntl, so even two cores in
one process exclude each other) and listens on a unix socket,
``instance.sock`` there (or, when that path is too long for a socket
address, ``annexsync-<hash>.sock`` in the runtime directory).

The socket speaks one JSON object per line, one request and one reply per
connection:

* ``{"op": "status"}`` -> ``{"ok": true, "status": <core.status.to_json>}``
* ``{"op": "handover", "argv": [...], "cwd": "..."}`` -> ``{"ok": true}``:
  a second launch hands its arguments to the running instance and exits.
* ``{"op": "xmpp-login", "jid", "password", "server", "ca_file"}`` and
  ``{"op": "xmpp-logout"}`` (``annexsync xmpp``; the socket is mode 0600, so the
  password never appears on a command line);
* anything else -> ``{"ok": false, "error": "..."}``

``serve`` is an accept loop owning a TaskGroup with one task per connection
(style 5: no task without an owner; asyncio's ``start_unix_server`` would
spawn unowned ones); every read and write is bounded by ``IO_TIMEOUT``, a
request line by ``MAX_REQUEST``.  ``request`` is the blocking client the CLI
uses; its connect and reply are bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from core.errors import CoreError

logger = logging.getLogger(__name__)

LOCK_FILE = "instance.lock"
SOCKET_FILE = "instance.sock"
MAX_REQUEST = 1 << 20
IO_TIMEOUT = 10.0
MAX_SUN_PATH = 100  # sockaddr_un holds 108 bytes on Linux, 104 on BSDs

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class AlreadyRunning(CoreError):
    def __init__(self, config_dir: Path) -> None:
        super().__init__(f"annexsync is already running for {config_dir}")
        self.config_dir = config_dir


class InstanceLock:
    """The flock on ``instance.lock``; ``release`` (or garbage collection) frees it."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = Path(config_dir)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.config_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise AlreadyRunning(self.config_dir) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_running(config_dir: Path) -> bool:
    """Whether some process holds the instance lock (without taking it for long)."""
    try:
        InstanceLock(config_dir).release()
    except AlreadyRunning:
        return True
    except OSError:
        return False
    return False


def socket_path(config_dir: Path) -> Path:
    p = Path(config_dir).absolute() / SOCKET_FILE
    if len(os.fsencode(p)) <= MAX_SUN_PATH:
        return p
    digest = hashlib.sha256(os.fsencode(p)).hexdigest()[:16]
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"annexsync-{os.getuid()}-{digest}.sock"


# --- server -----------------------------------------------------------------------


async def serve(config_dir: Path, handler: Handler, ready: asyncio.Event | None = None) -> None:
    """Answer requests until cancelled.  The caller must hold the ``InstanceLock``."""
    path = socket_path(config_dir)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: we hold the lock, so nobody else listens there
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(8)
        sock.setblocking(False)
        if ready is not None:
            ready.set()
        loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as tg:
            while True:
                conn, _ = await loop.sock_accept(sock)
                tg.create_task(_handle(conn, handler), name="instance-connection")
    finally:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _handle(conn: socket.socket, handler: Handler) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=conn, limit=MAX_REQUEST)
    try:
        async with asyncio.timeout(IO_TIMEOUT):
            line = await reader.readline()
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as e:
            reply: dict[str, Any] = {"ok": False, "error": f"bad request: {e}"}
        else:
            try:
                reply = await handler(request)
            except CoreError as e:
                reply = {"ok": False, "error": str(e)}
        writer.write(json.dumps(reply).encode() + b"\n")
        async with asyncio.timeout(IO_TIMEOUT):
            await writer.drain()
    except (TimeoutError, OSError, ValueError) as e:
        logger.info("instance socket: dropped a connection: %s", e)
    finally:
        writer.close()
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(IO_TIMEOUT):
                await writer.wait_closed()


# --- client -----------------------------------------------------------------------


def request(config_dir: Path, message: dict[str, Any], timeout: float = IO_TIMEOUT
            ) -> dict[str, Any] | None:
    """Send one request to the running instance; None when none listens.

    Raises:
        CoreError: an instance listens but did not answer properly in time.
    """
    path = socket_path(config_dir)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        s.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > 64 * MAX_REQUEST:
                raise CoreError("the running instance sent an oversized reply")
    except TimeoutError as e:
        raise CoreError(f"the running instance did not answer within {timeout:g} s") from e
    except OSError as e:
        raise CoreError(f"cannot talk to the running instance: {e}") from e
    finally:
        s.close()
    try:
        reply = json.loads(data)
    except ValueError as e:
        raise CoreError(f"the running instance sent a bad reply: {e}") from e
    if not isinstance(reply, dict):
        raise CoreError("the running instance sent a bad reply")
    return reply


def hand_over(config_dir: Path, argv: list[str], timeout: float = IO_TIMEOUT) -> bool:
    """Give a second launch's arguments to the running instance; False when none runs.

    Raises:
        CoreError: the running instance refused or did not answer.
    """
    return hand_over_reply(config_dir, argv, timeout) is not None


def hand_over_reply(config_dir: Path, argv: list[str],
                    timeout: float = IO_TIMEOUT) -> dict[str, Any] | None:
    """As ``hand_over``, returning the running instance's reply (``"window"``: whether it
    has a window to show), or None when none runs.

    Raises:
        CoreError: the running instance refused or did not answer.
    """
    reply = request(config_dir, {"op": "handover", "argv": argv, "cwd": os.getcwd()}, timeout)
    if reply is None:
        return None
    if not reply.get("ok"):
        raise CoreError(f"the running instance refused: {reply.get('error')}")
    return reply
