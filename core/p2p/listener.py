"""A TCP listener serving repositories to networked P2P peers (spec 4.2).

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
given to the listener (they open the first repository) and those in each
served repository's ``<gitdir>/annex/creds/p2pauth`` (one per line,
optionally followed by an address; spec 4.2; written by ``git annex p2p
--gen-addresses``).  The token picks the repository: one listener serves
many, each peer sees the one its token opens.  After AUTH the session is
``server.Session`` in read-write mode (spec 7: networked servers always are).

Misbehaving peers cost one connection, never the listener (the rules are
``core.p2p.limits``'):

- connections are counted when accepted, at most ``max_connections``
  (git-annex: 100 per network); at the cap a newcomer evicts the oldest
  connection that has not authenticated yet, or is refused when all have;
- a peer has ``auth_timeout`` from connecting to authenticate, however it
  trickles its bytes;
- failed AUTHs are throttled per address (``AuthThrottle``); a peer that
  would have to wait longer than ``auth_timeout`` is disconnected;
- a line over the 32768-byte cap or bytes that break the framing end that
  session (spec 2.1); a peer silent past ``idle_timeout`` between requests,
  or ``read_timeout`` inside one (a DATA that promises more than it sends),
  is dropped; any other exception in a session is logged on one line and
  ends only that session.

Two kinds of peers share the port (``core.p2p.sniff``): the first bytes of a
connection, read within ``auth_timeout`` (or ``idle_timeout`` when shorter), say whether it is a git-annex
peer (a P2P line, ``AUTH`` first: served here as above) or a paired device
(a session HELLO frame: handed to ``paired``, which runs the Noise handshake
and the P2P protocol inside it, ``core.devices.sessions.serve_device``).
Anything else gets one ``ERROR`` line and is closed, nothing served.

Unlike p2pstdio, the listener offers NOTIFYCHANGE (``notify``, spec 6.9)
and CONNECT (``tunnel``, spec 6.8), as git-annex's networked server does
(spec 4.2): one authenticated connection can carry git and content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

from core.errors import CoreError
from core.p2p.limits import AuthThrottle, ConnectionTable, one_line
from core.p2p.runtime import DEFAULT_READ_TIMEOUT, Channel, ConnectionLost
from core.p2p.serving import ServedRepo, Session, new_server_connection
from core.p2p.sniff import REFUSAL, Replay, Speaks, sniff

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 100
DEFAULT_IDLE_TIMEOUT = 600.0
AUTH_TIMEOUT = 30.0  # from connecting to AUTH-SUCCESS

ServedFor = Callable[[Path], Awaitable[ServedRepo]]
# serves one paired device's session (``DeviceHub.serve_lan``): the stream, and
# the listener's repositories by path
PairedHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, ServedFor],
                         Awaitable[None]]  # fmt: skip


class NotServed(CoreError):
    """A paired device asked for a repository this listener does not serve."""


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
        served: the repository, or repositories (shared with any other
            server in this process); a peer's token picks one.
        tokens: accepted AUTH tokens for the first repository, besides
            those in the creds files.
        paired: serves sessions of paired devices (None: they are refused
            like any other bytes that are not AUTH).
        port: 0 picks a free port; read ``port`` once ``started`` is set.
    """

    def __init__(
        self,
        served: ServedRepo | Sequence[ServedRepo],
        tokens: Iterable[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        auth_timeout: float = AUTH_TIMEOUT,
        throttle: AuthThrottle | None = None,
        paired: PairedHandler | None = None,
    ) -> None:
        self.repos = [served] if isinstance(served, ServedRepo) else list(served)
        if not self.repos:
            raise ValueError("nothing to serve")
        self.served = self.repos[0]
        self.tokens = [t.lower() for t in tokens]
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self.auth_timeout = auth_timeout
        self.table: ConnectionTable[asyncio.StreamWriter] = ConnectionTable(max_connections)
        self.throttle = throttle or AuthThrottle(clock=time.monotonic)
        self.paired = paired
        self._tg: asyncio.TaskGroup | None = None
        self._full = False

    @property
    def active(self) -> int:
        """Connections open now (counted from accept)."""
        return len(self.table)

    def find(self, token: str) -> ServedRepo | None:
        """The repository ``token`` opens; constant time over every known token."""
        given = token.lower().encode()
        found: ServedRepo | None = None
        for i, served in enumerate(self.repos):
            known = (self.tokens if i == 0 else []) + creds_tokens(served.repo.gitdir)
            for t in known:  # no early exit
                if hmac.compare_digest(given, t.encode()) and found is None:
                    found = served
        return found

    async def authenticate(self, writer: asyncio.StreamWriter, client_uuid: str,
                           token: str) -> ServedRepo | None:  # fmt: skip
        """Check one AUTH; a failure is answered only after the throttle's delay.

        Raises:
            ConnectionLost: this address failed so often that it would wait
                longer than ``auth_timeout``: the session ends.
        """
        found = await asyncio.to_thread(self.find, token)
        peer = _host_of(writer)
        logger.info("AUTH from %s (%s): %s", peer, one_line(client_uuid, 64),
                    "refused" if found is None else f"accepted for {found.uuid}")  # fmt: skip
        if found is not None:
            self.table.busy(writer)
            return found
        delay = self.throttle.failed(peer)
        if delay > self.auth_timeout:
            raise ConnectionLost(f"too many failed AUTH from {peer}")
        await asyncio.sleep(delay)
        return None

    async def run(self, started: asyncio.Event | None = None,
                  on_started: Callable[[Listener], None] | None = None) -> None:  # fmt: skip
        """Listen until cancelled; ``started`` is set (and ``on_started`` called)
        once ``port`` is known.

        Raises:
            OSError: the address is in use or not ours.
        """
        # bound outside the group, so a failure to bind is a plain OSError
        server = await asyncio.start_server(self._accepted, self.host, self.port,
                                            start_serving=False)  # fmt: skip
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                try:
                    await server.start_serving()
                    self.port = server.sockets[0].getsockname()[1]
                    logger.info("P2P listener on %s:%d", self.host, self.port)
                    if started is not None:
                        started.set()
                    if on_started is not None:
                        on_started(self)
                    await asyncio.Future()  # until cancelled
                finally:
                    server.close()
                    self._tg = None
        finally:
            server.close()
            for served in self.repos:
                await asyncio.to_thread(served.flush)

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Count the connection in at once (a burst cannot overrun the cap)."""
        admitted, victim = (False, None) if self._tg is None else self.table.admit(writer)
        if victim is not None:
            logger.debug("closing %s: not authenticated, and the cap is reached", _host_of(victim))
            victim.close()
        if not admitted or self._tg is None:
            if not self._full:
                logger.warning("refusing connections: %d sessions running", self.active)
            self._full = True
            writer.close()
            return
        self._full = False
        self._tg.create_task(self._serve_one(reader, writer))

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername"))
        try:
            speaks, first = await sniff(reader, min(self.auth_timeout, self.idle_timeout))
            if speaks is Speaks.SESSION and self.paired is not None:
                self.table.busy(writer)  # the session layer bounds its handshake
                await self.paired(Replay(first, reader), writer, self.served_for)
            elif speaks is Speaks.P2P:
                await self._serve_p2p(Replay(first, reader), writer, peer)
            elif not first:
                logger.debug("%s said nothing in time: closed", peer)
            else:
                logger.info("refused %s: its first bytes %r are neither AUTH nor a paired "
                            "device's session", peer, first)  # fmt: skip
                writer.write(REFUSAL)
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.read_timeout):
                        await writer.drain()
        except Exception as e:  # noqa: BLE001 - one bad session must not stop the rest
            logger.info("session with %s ended: %s", peer, one_line(e))
        finally:
            self.table.remove(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_p2p(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         peer: str) -> None:  # fmt: skip
        conn = new_server_connection(self.served, networked=True)
        channel = Channel(conn, reader, writer, read_timeout=self.read_timeout, peer=peer)
        session = Session(self.served, channel, authenticate=partial(self.authenticate, writer),
                          idle_timeout=self.idle_timeout, auth_timeout=self.auth_timeout,
                          networked_extras=True)  # fmt: skip
        await session.run(greet=False)

    async def served_for(self, path: Path) -> ServedRepo:
        """The served repository at ``path`` (for a paired device's session).

        Raises:
            NotServed: this listener does not serve it.
        """
        want = await asyncio.to_thread(Path(path).resolve)
        for served in self.repos:
            if await asyncio.to_thread(served.repo.path.resolve) == want:
                return served
        raise NotServed(f"{path} is not served on this listener")


def _host_of(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


__all__ = ["AUTH_TIMEOUT", "DEFAULT_IDLE_TIMEOUT", "MAX_CONNECTIONS", "Listener", "NotServed",
           "PairedHandler", "ServedFor", "creds_tokens"]  # fmt: skip
