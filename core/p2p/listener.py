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

A gateway serves its clusters and proxied repositories here too (clusters.md
5, 10).  AUTH cannot name a target UUID (p2pstdio has ``--uuid``, HTTP the
URL), so the token names it: ``<gitdir>/annex/creds/p2pauth-proxied`` holds
``TOKEN UUID`` lines (``annexsync p2p-gen-address``), each token opening one
UUID of that repository's own proxy.log entry, checked at every AUTH
(``gateway.proxied_target``: a token outlives nothing it no longer proxies).
git-annex never reads that file, so such a token never opens the gateway
itself in git-annex's own listener, and ``git annex p2p --gen-addresses``,
which rewrites ``p2pauth`` keeping only the lines it parses, cannot lose it.
The peer then gets ``AUTH-SUCCESS <cluster or proxied uuid>`` (the UUID a
git-annex client linked with ``git annex p2p --link`` records and checks on
every connection) and is served by a ``serving.Handoff``: a cluster by
``gateway.GatewaySession`` (the fan-out rules of p2pstdio and p2phttp, one
copy), a proxied local repository by ``serving.Session`` as it is.  Either
way NOTIFYCHANGE and CONNECT are ``ERROR protocol error`` (clusters.md 5.10):
git goes to the gateway itself, with its own token.  Nodes are reached as
p2pstdio reaches them (our ``p2pstdio`` in a subprocess, ssh).

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
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

from core.errors import CoreError
from core.p2p.gateway import ClusterTarget, GatewaySession, open_proxied, proxied_target
from core.p2p.limits import AuthThrottle, ConnectionTable, one_line
from core.p2p.runtime import DEFAULT_READ_TIMEOUT, Channel, ConnectionLost
from core.p2p.serving import Handoff, ServedRepo, Session, new_server_connection
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


PROXIED_TOKENS = "p2pauth-proxied"  # in annex/creds: TOKEN UUID lines (module docstring)


def _creds_lines(gitdir: Path, name: str) -> list[list[str]]:
    try:
        text = (gitdir / "annex" / "creds" / name).read_text()
    except OSError:
        return []
    return [line.split() for line in text.splitlines() if line.strip()]


def creds_tokens(gitdir: Path) -> list[str]:
    """Tokens from ``annex/creds/p2pauth``, lower-cased (spec 4.2)."""
    return [words[0].lower() for words in _creds_lines(gitdir, "p2pauth")]


def proxied_tokens(gitdir: Path) -> list[tuple[str, str]]:
    """(token, proxied uuid) from ``annex/creds/p2pauth-proxied``, tokens lower-cased."""
    return [(w[0].lower(), w[1]) for w in _creds_lines(gitdir, PROXIED_TOKENS) if len(w) >= 2]


def add_proxied_token(gitdir: Path, token: str, uuid: str) -> None:
    """Append ``TOKEN UUID`` to ``annex/creds/p2pauth-proxied`` (owner-only, as creds are)."""
    creds = gitdir / "annex" / "creds"
    creds.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(creds / PROXIED_TOKENS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(f"{token} {uuid}\n")


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
        self._proxied: dict[str, ServedRepo] = {}  # proxied local repositories, opened here
        self._proxied_lock = threading.Lock()

    @property
    def active(self) -> int:
        """Connections open now (counted from accept)."""
        return len(self.table)

    def find(self, token: str) -> tuple[ServedRepo, str | None] | None:
        """The repository ``token`` opens, and the proxied UUID it names there
        (None: the repository itself); constant time over every known token."""
        given = token.lower().encode()
        found: tuple[ServedRepo, str | None] | None = None
        for i, served in enumerate(self.repos):
            own = (self.tokens if i == 0 else []) + creds_tokens(served.repo.gitdir)
            known = [(t, None) for t in own] + proxied_tokens(served.repo.gitdir)
            for t, target in known:  # no early exit
                if hmac.compare_digest(given, t.encode()) and found is None:
                    found = (served, target)
        return found

    async def authenticate(self, writer: asyncio.StreamWriter, client_uuid: str,
                           token: str) -> ServedRepo | Handoff | None:  # fmt: skip
        """Check one AUTH; a failure is answered only after the throttle's delay.

        Raises:
            ConnectionLost: this address failed so often that it would wait
                longer than ``auth_timeout``: the session ends.
        """
        found = await asyncio.to_thread(self.find, token)
        opened = None if found is None else await self._open(*found)
        peer = _host_of(writer)
        said = "refused" if opened is None or found is None else f"accepted for {found[1] or found[0].uuid}"
        logger.info("AUTH from %s (%s): %s", peer, one_line(client_uuid, 64), said)
        if opened is not None:
            self.table.busy(writer)
            return opened
        delay = self.throttle.failed(peer)
        if delay > self.auth_timeout:
            raise ConnectionLost(f"too many failed AUTH from {peer}")
        await asyncio.sleep(delay)
        return None

    async def _open(self, served: ServedRepo, uuid: str | None) -> ServedRepo | Handoff | None:
        """What a token opens: ``served`` itself, or the proxied ``uuid`` served
        through it (None when the gateway no longer proxies it)."""
        if uuid is None:
            return served
        try:
            target = await asyncio.to_thread(proxied_target, served.repo, uuid)
            if isinstance(target, ClusterTarget):
                return Handoff(partial(self._serve_cluster, served, target))
            node = await asyncio.to_thread(self._proxied_repo, target, uuid)
        except CoreError as e:  # NotProxied, or no repository there (RepoError)
            logger.warning("a token of %s names %s, which it does not serve: %s",
                           served.repo.path, uuid, one_line(e))  # fmt: skip
            return None
        return Handoff(partial(self._serve_proxied, node))

    def _proxied_repo(self, path: Path, uuid: str) -> ServedRepo:
        """The proxied local repository ``uuid`` at ``path``, shared by its sessions.

        Raises:
            NotProxied: another repository is there now.
            RepoError: none is.
        """
        with self._proxied_lock:
            known = self._proxied.get(uuid) or next((s for s in self.repos if s.uuid == uuid), None)
            if known is not None:
                return known
            self._proxied[uuid] = served = ServedRepo(open_proxied(path, uuid))
            return served

    async def _serve_cluster(self, gateway: ServedRepo, target: ClusterTarget, ch: Channel,
                             client_uuid: str) -> None:  # fmt: skip
        await GatewaySession(gateway, ch, target, client_uuid=client_uuid,
                             idle_timeout=self.idle_timeout).run(greet=True)  # fmt: skip

    async def _serve_proxied(self, node: ServedRepo, ch: Channel, client_uuid: str) -> None:
        await Session(node, ch, client_uuid=client_uuid, idle_timeout=self.idle_timeout,
                      proxied=True).run(greet=True)  # fmt: skip

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
            proxied, self._proxied = list(self._proxied.values()), {}
            for served in proxied:  # opened here, so closed here
                await asyncio.to_thread(served.flush)
                await asyncio.to_thread(served.repo.close)

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


__all__ = ["AUTH_TIMEOUT", "DEFAULT_IDLE_TIMEOUT", "MAX_CONNECTIONS", "PROXIED_TOKENS", "Listener",
           "NotServed", "PairedHandler", "ServedFor", "add_proxied_token", "creds_tokens",
           "proxied_tokens"]  # fmt: skip
