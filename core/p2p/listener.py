"""A TCP listener serving one repository to networked P2P peers (spec 4.2).

Theory of operation
-------------------
``Listener.run()`` owns everything it starts: one ``asyncio.TaskGroup`` holds
a task per connection (style 5: no bare ``create_task``), the listening
socket is closed in ``finally``, and cancelling ``run`` cancels every
session, whose own ``finally`` releases locks and closes its socket.

Each connection is a networked server ``Connection`` (AUTH first): before a
valid ``AUTH <uuid> <token>`` the machine refuses every other request
(``ERROR unexpected command`` / ``unknown command``, spec 4.2, 8), a wrong
token gets ``AUTH-FAILURE`` and the client may try again.  Tokens are
compared case-insensitively (spec 3) in constant time, against the tokens
given to the listener and those in ``<gitdir>/annex/creds/p2pauth`` (one per
line, optionally followed by an address; spec 4.2).  After AUTH the session
is ``server.Session`` in read-write mode (spec 7: networked servers always
are).

Misbehaving peers cost one connection, never the listener: a line over the
32768-byte cap or bytes that break the framing end that session (spec 2.1);
a peer silent past ``idle_timeout`` between requests, or ``read_timeout``
inside one (a DATA that promises more than it sends), is dropped; any other
exception in a session is logged and ends only that session.  At most
``max_connections`` sessions run at once (git-annex: 100 per network);
connections beyond that are closed at once.

Unlike p2pstdio, the listener offers NOTIFYCHANGE (``notify``, spec 6.9)
and CONNECT (``tunnel``, spec 6.8), as git-annex's networked server does
(spec 4.2): one authenticated connection can carry git and content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Iterable
from pathlib import Path

from core.p2p.runtime import DEFAULT_READ_TIMEOUT, Channel
from core.p2p.serving import ServedRepo, Session, new_server_connection

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 100
DEFAULT_IDLE_TIMEOUT = 600.0


def creds_tokens(gitdir: Path) -> list[str]:
    """Tokens from ``annex/creds/p2pauth``, lower-cased (spec 4.2)."""
    try:
        text = (gitdir / "annex" / "creds" / "p2pauth").read_text()
    except OSError:
        return []
    return [line.split()[0].lower() for line in text.splitlines() if line.strip()]


class Listener:
    """Serve ``served`` on ``host:port`` to peers that know a token.

    Args:
        served: the repository (shared with any other server in this process).
        tokens: accepted AUTH tokens, besides those in the creds file.
        port: 0 picks a free port; read ``port`` once ``started`` is set.
    """

    def __init__(
        self,
        served: ServedRepo,
        tokens: Iterable[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        self.served = served
        self.tokens = [t.lower() for t in tokens]
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self.active = 0
        self._tg: asyncio.TaskGroup | None = None

    def authenticate(self, client_uuid: str, token: str) -> bool:
        given = token.lower().encode()
        known = self.tokens + creds_tokens(self.served.repo.gitdir)
        ok = False
        for t in known:  # no early exit: constant time over the list
            ok |= hmac.compare_digest(given, t.encode())
        logger.info("AUTH from %s: %s", client_uuid, "accepted" if ok else "refused")
        return ok

    async def run(self, started: asyncio.Event | None = None) -> None:
        """Listen until cancelled; ``started`` is set once ``port`` is known."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            server = await asyncio.start_server(self._accepted, self.host, self.port)
            try:
                self.port = server.sockets[0].getsockname()[1]
                logger.info("P2P listener on %s:%d", self.host, self.port)
                if started is not None:
                    started.set()
                await asyncio.Future()  # until cancelled
            finally:
                server.close()
                self._tg = None
                await asyncio.to_thread(self.served.flush)

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._tg is None or self.active >= self.max_connections:
            logger.warning("refusing a connection: %d sessions running", self.active)
            writer.close()
            return
        self._tg.create_task(self._serve_one(reader, writer))

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername"))
        conn = new_server_connection(self.served, networked=True)
        channel = Channel(conn, reader, writer, read_timeout=self.read_timeout, peer=peer)
        session = Session(self.served, channel, authenticate=self.authenticate,
                          idle_timeout=self.idle_timeout, networked_extras=True)  # fmt: skip
        self.active += 1
        try:
            await session.run(greet=False)
        except Exception as e:  # noqa: BLE001 - one bad session must not stop the rest
            logger.info("session with %s ended: %s", peer, e)
        finally:
            self.active -= 1
            with contextlib.suppress(Exception):
                writer.close()


__all__ = ["DEFAULT_IDLE_TIMEOUT", "MAX_CONNECTIONS", "Listener", "creds_tokens"]
