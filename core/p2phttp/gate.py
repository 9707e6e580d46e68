"""The P2P HTTP server's front door: connections counted at accept, bounded logs.

aiohttp glue over the pure rules of ``core.p2p.limits``.

Theory of operation
-------------------
We open the listening sockets ourselves (``listen``) with a protocol factory
that wraps aiohttp's: ``_Counted`` asks the ``Gate`` (a ``ConnectionTable``)
before aiohttp sees the connection.  Past ``max_connections`` the oldest
connection that is not inside a request (headers still trickling in, or idle
between keep-alive requests) is closed to make room; when every connection
is inside a request the newcomer is closed at once.  So no number of
half-open requests can take the descriptors a real request needs, and a
request that does come in is served.  ``handle`` in ``server`` marks a
connection busy for the time its handler runs.

The time a connection has to send complete request headers (after
connecting, and after each response) is aiohttp's keep-alive timeout, which
the server sets to ``header_timeout``: aiohttp closes a connection still
waiting for a complete request when it expires, however the bytes trickle.

Logs: aiohttp logs a malformed request, and a handler that failed, with a
traceback that echoes what the peer sent.  ``http_logger`` is the logger
handed to aiohttp; its filter turns every record into one line of bounded
length (``limits.one_line``), without the traceback.

Known gap: with TLS, asyncio calls the protocol only once the handshake is
done, so a connection stalled in its handshake is not counted; asyncio ends
it after ``ssl_handshake_timeout`` (60 s).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from collections.abc import Callable
from pathlib import Path

from core.p2p.limits import ConnectionTable, one_line

logger = logging.getLogger(__name__)

FD_RESERVE = 64  # descriptors kept for repositories, logs, git and the loop itself
MAX_CONNECTIONS = 1000
# asyncio accepts up to ``backlog`` sockets per wake-up before any protocol
# (and so the gate) sees them; a burst must fit in the reserve, or accept()
# itself runs out of descriptors before the gate can evict.
ACCEPT_BATCH = FD_RESERVE // 2


def default_max_connections(locked_files: int) -> int:
    """What the descriptor limit allows: two per connection (socket + object file)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 4096
    return max(8, min(MAX_CONNECTIONS, (soft - FD_RESERVE - locked_files) // 2))


class Gate:
    """The connections of one server (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        self.table: ConnectionTable[asyncio.BaseTransport] = ConnectionTable(limit)
        self.refused = 0
        self.evicted = 0

    def busy(self, transport: asyncio.BaseTransport | None) -> None:
        if transport is not None:
            self.table.busy(transport)

    def idle(self, transport: asyncio.BaseTransport | None) -> None:
        if transport is not None:
            self.table.idle(transport)

    def factory(self, make: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Counted(self, make)

    def _admit(self, transport: asyncio.BaseTransport) -> bool:
        admitted, victim = self.table.admit(transport)
        if victim is not None:
            self.evicted += 1
            logger.debug("closing an idle connection: %d connections open", len(self.table))
            victim.close()
        if not admitted:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                logger.warning("refusing connections: %d open, all inside a request (%d refused)",
                               len(self.table), self.refused)  # fmt: skip
        return admitted


class _Counted(asyncio.Protocol):
    """aiohttp's protocol, created only for a connection the gate admits."""

    def __init__(self, gate: Gate, make: Callable[[], asyncio.BaseProtocol]) -> None:
        self.gate = gate
        self.make = make
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if not self.gate._admit(transport):
            if isinstance(transport, asyncio.Transport):
                transport.abort()  # no goodbye: nothing of it is read
            else:
                transport.close()
            return
        inner = self.make()
        assert isinstance(inner, asyncio.Protocol)
        self.inner = inner
        inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.gate.table.remove(self.transport)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


async def listen(gate: Gate, make: Callable[[], asyncio.BaseProtocol], *, host: str | None,
                 port: int, socket_path: Path | None,
                 tls: ssl.SSLContext | None) -> asyncio.Server:  # fmt: skip
    """Listen on TCP ``host:port`` (all addresses when None) or a unix socket.

    Raises:
        OSError: the address is in use or not ours.
    """
    loop = asyncio.get_running_loop()
    factory = gate.factory(make)
    if socket_path is not None:
        return await loop.create_unix_server(factory, str(socket_path), ssl=tls,
                                             backlog=ACCEPT_BATCH)  # fmt: skip
    return await loop.create_server(factory, host, port, ssl=tls, backlog=ACCEPT_BATCH)


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text = f"{text}: {type(exc).__name__}: {exc}"
        record.msg, record.args = one_line(text), ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


http_logger = logging.getLogger("core.p2phttp.http")
http_logger.addFilter(_OneLine())


__all__ = ["FD_RESERVE", "Gate", "default_max_connections", "http_logger", "listen"]
