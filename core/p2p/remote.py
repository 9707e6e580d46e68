"""P2P remotes: the client side of the protocol behind the ``Remote`` interface.

Theory of operation
-------------------
Two layers:

- ``P2PClient`` is one async client session over a ``transport.Link``: it
  waits for the greeting (p2pstdio, spec 4.1, pitfall 1) or does AUTH
  (networked, spec 4.2), checks the served UUID, negotiates VERSION 4 once
  (4.3), then runs one request at a time (spec 6).  A server ``ERROR`` fails
  only that request (``RemoteRefused``, spec 8); EOF or a timeout kills the
  session (``RemoteUnavailable``; pitfall 8).  Content streams in chunks
  both ways, never whole in memory (2.3).
- ``P2PRemote`` implements the synchronous ``core.remotes.Remote`` protocol
  for the CLI and ``core.ops.transfer`` by running ``P2PClient`` coroutines
  on a private ``asyncio.Runner`` owned by the remote, in the caller's
  thread.  Sessions are pooled: a LOCKCONTENT pins its session until the
  context exits (the server reads exactly one more line, spec 6.2), so a
  second request meanwhile opens another session.  Callers already inside a
  running event loop (the GUI) should use ``P2PClient`` directly;
  ``Runner.run`` refuses to nest.  With ``run_on`` the coroutines run on that
  loop instead (running in another thread; a paired device's remote keeps
  its XMPP connection there), the caller's thread waiting for each.

Resume (spec 6.5, 6.7): ``retrieve`` asks ``GET <bytes already in
annex/tmp>``, so a GET cut short continues where it stopped; ``store``
honours ``PUT-FROM <offset>``.  ``DATA`` is sent from a file we stat before
and after; a change sends ``INVALID`` so the server re-verifies.

Drop safety (spec 6.4): a lock taken over P2P proves a copy for 600 s.  While
any such lock is held in this process, ``remove`` does not send a plain
REMOVE to a version 3+ server but ``GETTIMESTAMP`` and ``REMOVE-BEFORE
R + (earliest lock expiry - now)``, as git-annex does, so a removal that
arrives after the proof expired is refused by the server.  (The ``Remote``
interface has no way to pass the proof's expiry; the registry of held locks
stands in for it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import unquote, urlparse

from core.errors import (
    ContentMissing,
    CoreError,
    PartialRemoval,
    RemoteError,
    RemoteProtocolError,
    RemoteRefused,
    RemoteUnavailable,
)
from core.p2p.events import DONE, PAUSED, ConnectionClosed, Event, Payload, PayloadEnd, Sentinel
from core.p2p.machine import client as client_machine
from core.p2p.messages import (
    AlreadyHave,
    AlreadyHavePlus,
    Auth,
    AuthFailure,
    AuthSuccess,
    Changed,
    CheckPresent,
    Connect,
    Data,
    Error,
    Failure,
    FailurePlus,
    Get,
    GetTimestamp,
    Invalid,
    LockContent,
    Message,
    NotifyChange,
    Put,
    PutFrom,
    Remove,
    RemoveBefore,
    Service,
    Success,
    SuccessPlus,
    Timestamp,
    UnlockContent,
    Valid,
    Version,
)
from core.p2p.runtime import (
    DEFAULT_READ_TIMEOUT,
    ByteReader,
    Channel,
    ConnectionLost,
    PayloadSink,
    ReadInto,
)
from core.p2p.transport import Link, open_subprocess, ssh_command
from core.p2p.tunnel import DIRECT_NETNAMES, open_p2p_link, parse_p2p_url, relay_connect
from core.remotes import Advance, RemoteInfo
from core.repo.key import Key
from core.repo.objects import Incoming, write_batch

logger = logging.getLogger(__name__)


T = TypeVar("T")
LOCK_PROOF_SECONDS = 600.0  # spec 6.2: how long a P2P lock proves a copy
GREETING_TIMEOUT = 60.0
Connector = Callable[[], Awaitable[Link]]


# --- locks held in this process (spec 6.4) --------------------------------------

_held_lock = threading.Lock()
_held: dict[int, float] = {}  # id -> monotonic expiry of the proof
_held_ids = iter(range(1, 2**62))


def _hold(expiry: float) -> int:
    with _held_lock:
        n = next(_held_ids)
        _held[n] = expiry
        return n


def _release(n: int) -> None:
    with _held_lock:
        _held.pop(n, None)


def earliest_lock_expiry() -> float | None:
    """Monotonic time when the first P2P lock proof held here expires."""
    with _held_lock:
        return min(_held.values(), default=None)


# --- one session ---------------------------------------------------------------


class P2PClient:
    """One open client session (use ``P2PClient.connect``)."""

    def __init__(self, link: Link, channel: Channel, server_uuid: str) -> None:
        self.link = link
        self.ch = channel
        self.server_uuid = server_uuid

    @property
    def version(self) -> int:
        return self.ch.conn.version

    @property
    def usable(self) -> bool:
        return not self.ch.conn.finished

    @classmethod
    async def connect(
        cls,
        link: Link,
        *,
        our_uuid: str,
        expect_uuid: str | None = None,
        token: str | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> P2PClient:
        """Open a session: greeting or AUTH, UUID check, VERSION.

        Raises:
            RemoteUnavailable: no or wrong greeting, wrong UUID, timeout.
            RemoteRefused: AUTH rejected.
        """
        networked = token is not None
        ch = Channel(client_machine(networked=networked), link.reader, link.writer,
                     read_timeout=read_timeout, peer=link.name)  # fmt: skip
        try:
            if token is not None:
                await ch.send(Auth(our_uuid, token))
            (greeting,) = await _reply(ch, GREETING_TIMEOUT)
            if isinstance(greeting, AuthFailure):
                raise RemoteRefused(f"{link.name}: authentication failed")
            if not isinstance(greeting, AuthSuccess):
                raise RemoteUnavailable(f"{link.name}: unexpected greeting {greeting!r}")
            if expect_uuid and greeting.uuid != expect_uuid:
                raise RemoteUnavailable(
                    f"{link.name}: expected repository {expect_uuid}, found {greeting.uuid}"
                )
            await ch.send(Version(4))
            await _reply(ch)
        except BaseException:
            await ch.aclose()
            await link.aclose()
            raise
        return cls(link, ch, greeting.uuid)

    async def aclose(self) -> None:
        await self.ch.aclose()
        await self.link.aclose()

    # --- requests -------------------------------------------------------------

    async def check_present(self, key: Key) -> bool:
        return _yes_no(await self._request(CheckPresent(key)), "CHECKPRESENT")

    async def lock(self, key: Key) -> bool:
        """LOCKCONTENT; on True the session stays locked until ``unlock``."""
        return _yes_no(await self._request(LockContent(key)), "LOCKCONTENT")

    async def unlock(self) -> None:
        await self.ch.send(UnlockContent())  # bare: pitfall 4

    async def timestamp(self) -> int:
        return timestamp_of(await self._request(GetTimestamp()))

    async def remove(self, key: Key, before: int | None = None) -> bool:
        return (await self.remove_plus(key, before))[0]

    async def remove_plus(self, key: Key, before: int | None = None) -> tuple[bool, tuple[str, ...]]:
        """REMOVE (or REMOVE-BEFORE): whether it went, and the extra UUIDs that
        lost the key too (SUCCESS-PLUS / FAILURE-PLUS from a cluster, clusters.md 4.3)."""
        msg: Message = Remove(key) if before is None else RemoveBefore(before, key)
        reply = await self._request(msg)
        return _yes_no(reply, "REMOVE"), _plus(reply)

    async def get(self, key: Key, into: Incoming, advance: Advance, file: bytes = b"") -> None:
        """Receive ``key`` into ``into`` from what it already holds (resume, 6.7).

        Raises:
            ContentMissing: the server does not have it (``DATA 0`` + INVALID).
            RemoteError: the content changed while sent, or the session died.
        """
        offset = await asyncio.to_thread(into.open)
        await self.ch.send(Get(offset, file, key))
        got = 0
        valid: bool | None = None
        batch: list[bytes] = []  # one thread hand-off per batch, not per chunk
        batched = 0
        limit = write_batch(key.size)

        async def flush() -> None:
            nonlocal batched
            if batch:
                data = b"".join(batch)
                batch.clear()
                batched = 0
                await asyncio.to_thread(into.write, data)
                advance(len(data))

        try:
            while True:
                ev = await _next(self.ch)
                if ev is PAUSED:
                    break
                if isinstance(ev, Data):  # straight into ``into`` where the channel can
                    before = into.written
                    try:
                        await self.ch.receive_payload(_reporting(into.write_from, advance))
                    finally:
                        got += into.written - before
                    continue
                if isinstance(ev, Payload):
                    batch.append(ev.data)
                    batched += len(ev.data)
                    got += len(ev.data)
                    if batched >= limit:
                        await flush()
                    continue
                await flush()
                if isinstance(ev, PayloadEnd):
                    valid = ev.valid
                elif isinstance(ev, Error):
                    raise RemoteRefused(f"{self.link.name}: GET {key}: {ev.text}")
        finally:
            await flush()  # what arrived before a cut is kept for resume
        if valid is False:
            await self.ch.send(Failure())
            if got == 0:
                raise ContentMissing(str(key), self.link.name)
            await asyncio.to_thread(into.discard)
            raise RemoteError(f"{key} changed on {self.link.name} while it was sent")
        await self.ch.send(Success())

    async def put(self, key: Key, source: Path, advance: Advance,
                  file: bytes = b"") -> tuple[str, ...]:  # fmt: skip
        """Send ``key`` from ``source``, from the offset the server asks (6.5).

        Returns the extra UUIDs a cluster or gateway stored to or already had
        (SUCCESS-PLUS, ALREADY-HAVE-PLUS; clusters.md 4.3).

        Raises:
            RemoteRefused: the server said no (FAILURE, ERROR).
            RemoteUnavailable: the session died.
        """
        (offer,) = await self._request(Put(file, key))
        if isinstance(offer, (AlreadyHave, AlreadyHavePlus)):
            return _plus([offer])
        if not isinstance(offer, PutFrom):
            raise _refusal(offer, "PUT")
        f = await asyncio.to_thread(source.open, "rb")
        try:
            before = os.fstat(f.fileno())
            await self._send_payload(f, offer.offset, before.st_size, advance)
            after = os.fstat(f.fileno())
        finally:
            f.close()
        same = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
        (result,) = await self._request(Valid() if same else Invalid())
        if not isinstance(result, (Success, SuccessPlus)):
            raise _refusal(result, f"PUT {key}")
        return _plus([result])

    async def notify_change(self, timeout: float) -> tuple[str, ...]:
        """NOTIFYCHANGE: wait up to ``timeout`` for the server's refs to move (6.9).

        Returns the new SHAs.  A timeout leaves the session unusable (the
        server still owes CHANGED), so the pool drops it.

        Raises:
            RemoteRefused: the server does not offer it (ERROR).
            RemoteUnavailable: timeout or the session died.
        """
        await self.ch.send(NotifyChange())
        (reply,) = await _reply(self.ch, timeout)
        if not isinstance(reply, Changed):
            raise _refusal(reply, "NOTIFYCHANGE")
        return reply.refs

    async def connect_service(
        self,
        service: Service,
        local_in: ByteReader,
        local_out: asyncio.StreamWriter,
        idle_timeout: float | None = None,
    ) -> int:
        """CONNECT: tunnel ``service`` (6.8); the session ends with it.

        ``local_in`` goes to the remote git, its output goes to ``local_out``.
        Returns the remote git's exit code.

        Raises:
            RemoteRefused: refused (say, receive-pack on a read-only server).
            RemoteUnavailable: the session died or went silent.
        """
        await self.ch.send(Connect(service))
        limit = self.ch.read_timeout if idle_timeout is None else idle_timeout
        try:
            return await relay_connect(self.ch, local_in, local_out, idle_timeout=limit)
        except RemoteProtocolError as e:
            raise RemoteUnavailable(f"{self.link.name}: protocol error: {e}") from e

    async def _send_payload(self, f: BinaryIO, offset: int, size: int, advance: Advance) -> None:
        left = max(size - offset, 0)
        await self.ch.send(Data(left))
        await self.ch.send_file(f, offset, left, advance)  # shrank: a cut (spec 2.3)

    async def _request(self, msg: Message) -> list[Event]:
        await self.ch.send(msg)
        return await _reply(self.ch)

    # --- for relays (a cluster gateway, core.p2p.gateway) ---------------------

    async def exchange(self, *events: Message | Payload) -> list[Event]:
        """Send ``events``, then read the reply (events up to our turn)."""
        await self.ch.send(*events)
        return await _reply(self.ch)

    async def reply(self) -> list[Event]:
        """The reply to what was sent (events up to our turn)."""
        return await _reply(self.ch)

    async def next(self) -> Event | Sentinel:
        """The next event; EOF raises ``ConnectionLost``."""
        return await _next(self.ch)


def _reporting(sink: PayloadSink, advance: Advance) -> PayloadSink:
    """``sink`` with each read's bytes told to ``advance`` on the event loop's
    thread (``sink`` runs on a worker: ``Channel.receive_payload``).  What
    ``advance`` raises there (``jobs.Stopped``: the operation is stopping) is
    raised by the worker's next read, so the transfer stops as it does when
    ``advance`` is called in line; the partial file stays for resume."""
    loop = asyncio.get_running_loop()
    raised: list[Exception] = []

    def tell(n: int) -> None:
        try:
            advance(n)
        except Exception as e:  # noqa: BLE001 - handed to the worker, raised there
            raised.append(e)

    def run(read_into: ReadInto, count: int) -> object:
        def counted(view: memoryview) -> int:
            if raised:
                raise raised[0]
            n = read_into(view)
            if n:
                loop.call_soon_threadsafe(tell, n)
            return n

        return sink(counted, count)

    return run


async def _next(ch: Channel, timeout: float | None = None) -> Event | Sentinel:
    try:
        ev = await ch.next_event(timeout)
    except RemoteProtocolError as e:
        if e.error_line:
            with contextlib.suppress(CoreError, OSError):
                await ch.send_raw(e.error_line)
        raise RemoteUnavailable(f"{ch.peer}: protocol error: {e}") from e
    if ev is DONE or isinstance(ev, ConnectionClosed):
        raise ConnectionLost(f"{ch.peer} closed the connection")
    return ev


async def _reply(ch: Channel, timeout: float | None = None) -> list[Event]:
    """Events up to our next turn (a reply is one message)."""
    out: list[Event] = []
    while (ev := await _next(ch, timeout)) is not PAUSED:
        assert not isinstance(ev, Sentinel)
        out.append(ev)
    return out


def _yes_no(reply: list[Event], what: str) -> bool:
    if len(reply) == 1 and isinstance(reply[0], (Success, SuccessPlus)):
        return True
    if len(reply) == 1 and isinstance(reply[0], (Failure, FailurePlus)):
        return False
    raise _refusal(reply[0] if reply else None, what)


def _plus(reply: list[Event]) -> tuple[str, ...]:
    """The UUID list of a -PLUS answer; () for any other."""
    if len(reply) == 1 and isinstance(reply[0], (SuccessPlus, FailurePlus, AlreadyHavePlus)):
        return reply[0].uuids
    return ()


def timestamp_of(reply: list[Event]) -> int:
    """The answer to GETTIMESTAMP in ``reply``.

    Raises:
        RemoteRefused: any other reply.
    """
    if len(reply) == 1 and isinstance(reply[0], Timestamp):
        return reply[0].timestamp
    raise _refusal(reply[0] if reply else None, "GETTIMESTAMP")


def _refusal(reply: object, what: str) -> RemoteRefused:
    if isinstance(reply, Error):
        return RemoteRefused(f"{what}: {reply.text}")
    if isinstance(reply, (Failure, FailurePlus)):
        return RemoteRefused(f"{what} failed")
    return RemoteRefused(f"{what}: unexpected reply {reply!r}")


# --- the synchronous Remote ----------------------------------------------------


class P2PRemote:
    """A ``core.remotes.Remote`` over P2P sessions (see the module docstring).

    Args:
        info: the remote as configured.
        our_uuid: this repository's UUID (sent to the server).
        connector: opens a fresh ``Link`` (ssh subprocess, TCP, ...).
        token: AUTH token for networked servers; None for p2pstdio.
    """

    def __init__(
        self,
        info: RemoteInfo,
        our_uuid: str,
        connector: Connector,
        *,
        token: str | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        run_on: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.info = info
        self.our_uuid = our_uuid
        self.connector = connector
        self.token = token
        self.read_timeout = read_timeout
        self._runner = asyncio.Runner() if run_on is None else None
        self._loop = run_on
        self._idle: list[P2PClient] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._runner, self._loop, self._idle)

    # --- sessions -------------------------------------------------------------

    def _run(self, coro: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await coro

        if self._loop is not None:
            return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result()
        assert self._runner is not None
        return self._runner.run(wrapped())

    def _acquire(self) -> P2PClient:
        while self._idle:
            session = self._idle.pop()
            if session.usable:
                return session
            self._run(session.aclose())
        session = self._run(self._connect())
        if self.info.uuid != session.server_uuid:
            self.info = replace(self.info, uuid=session.server_uuid)
        return session

    async def _connect(self) -> P2PClient:
        link = await self.connector()
        return await P2PClient.connect(
            link, our_uuid=self.our_uuid, expect_uuid=self.info.uuid, token=self.token,
            read_timeout=self.read_timeout,
        )  # fmt: skip

    @contextlib.contextmanager
    def _session(self) -> Iterator[P2PClient]:
        session = self._acquire()
        try:
            yield session
        except RemoteRefused:
            self._idle.append(session)  # the session goes on (spec 8)
            raise
        except BaseException:
            self._run(session.aclose())
            raise
        self._idle.append(session)

    def _call(self, fn: Callable[[P2PClient], Awaitable[T]]) -> T:
        with self._session() as s:
            return self._run(fn(s))

    def close(self) -> None:
        self._finalizer()

    # --- Remote ---------------------------------------------------------------

    def check_present(self, key: Key) -> bool:
        return self._call(lambda s: s.check_present(key))

    @contextlib.contextmanager
    def lock_content(self, key: Key) -> Iterator[None]:
        with self._session() as s:
            taken = time.monotonic()
            if not self._run(s.lock(key)):
                raise RemoteRefused(f"{self.info.name}: could not lock {key}")
            held = _hold(taken + LOCK_PROOF_SECONDS)
            try:
                yield
            finally:
                _release(held)
                self._run(s.unlock())

    def retrieve(self, key: Key, into: Incoming, advance: Advance) -> None:
        self._call(lambda s: s.get(key, into, advance))

    def store(self, key: Key, source: Path, advance: Advance) -> tuple[str, ...]:
        if self.info.readonly:
            raise RemoteRefused(f"{self.info.name} is read-only")
        return self._call(lambda s: s.put(key, source, advance))

    def remove(self, key: Key) -> tuple[str, ...]:
        expiry = earliest_lock_expiry()

        async def go(s: P2PClient) -> tuple[bool, tuple[str, ...]]:
            if expiry is None or s.version < 3:
                return await s.remove_plus(key)
            ts = await s.timestamp()
            left = math.floor(expiry - time.monotonic())
            if left <= 0:
                raise RemoteRefused(f"{self.info.name}: the copies proving {key} safe expired")
            return await s.remove_plus(key, before=ts + left)

        removed, plus = self._call(go)
        if not removed:
            raise PartialRemoval(f"{self.info.name}: could not remove {key}", plus)
        return plus


def _shutdown(runner: asyncio.Runner | None, loop: asyncio.AbstractEventLoop | None,
              idle: list[P2PClient]) -> None:  # fmt: skip
    """Close idle sessions (the server exits on EOF) and the private loop.

    Also runs from the garbage collector, possibly while another loop runs in
    this thread; then only the pipes are closed, synchronously.
    """

    async def close_all() -> None:
        for s in idle:
            await s.aclose()

    if loop is not None:  # not ours to close; its owner does
        with contextlib.suppress(Exception):
            if idle and not loop.is_closed() and asyncio._get_running_loop() is not loop:
                asyncio.run_coroutine_threadsafe(close_all(), loop).result(30)
        idle.clear()
        return
    assert runner is not None
    if asyncio._get_running_loop() is not None:
        for s in idle:
            with contextlib.suppress(Exception):
                s.link.writer.close()
        idle.clear()
        return
    with contextlib.suppress(Exception):
        if idle:
            runner.run(close_all())
    idle.clear()
    with contextlib.suppress(Exception):
        runner.close()


# --- building remotes from git config ------------------------------------------


def parse_ssh_url(url: str) -> tuple[str, int | None, str]:
    """``(host, port, path)`` of ``ssh://[u@]h[:p]/path`` or ``[u@]h:path``.

    ``ssh://h/~/x`` keeps ``/~/x``: git-annex-shell reads it as home (4.1).
    """
    if url.startswith(("ssh://", "git+ssh://", "ssh+git://")):
        u = urlparse(url)
        host = (u.username + "@" if u.username else "") + (u.hostname or "")
        return host, u.port, unquote(u.path)
    host, sep, path = url.partition(":")
    if not sep or "/" in host:
        raise RemoteUnavailable(f"{url!r} is not an ssh URL")
    return host, None, path


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\"'\"'") + "'"


def shell_words(shell: str, command: str, *args: str) -> str:
    """``shell 'command' 'arg'...``, quoted as git-annex quotes for ssh (spec 4.1)."""
    return " ".join([shell, _quote(command), *map(_quote, args)])


def shell_command(shell: str, path: str, our_uuid: str, expect_uuid: str | None) -> str:
    """The remote command git-annex sends through ssh (spec 4.1, 10.1)."""
    cmd = shell_words(shell, "p2pstdio", path, our_uuid)
    return cmd + (f" --uuid {_quote(expect_uuid)}" if expect_uuid else "")


def ssh_remote(info: RemoteInfo, our_uuid: str, shell: str | None) -> P2PRemote:
    """A P2P remote reached by running ``shell p2pstdio`` over ssh."""
    assert info.url is not None
    host, port, path = parse_ssh_url(info.url)
    command = shell_command(shell or "git-annex-shell", path, our_uuid, info.uuid)

    async def connect() -> Link:
        return await open_subprocess(ssh_command(host, command, port=port))

    return P2PRemote(info, our_uuid, connect)


def tcp_remote(info: RemoteInfo, our_uuid: str, token: str | None) -> P2PRemote:
    """A networked peer at ``p2p-annex::<netname>:<address>`` (spec 4.2).

    ``annexsync-tcp:HOST:PORT`` (and the older ``tcp:HOST:PORT``) is our
    listener, reached directly; any other network goes through its
    ``git-annex-p2p-<netname>`` helper, as git-annex does (see ``tunnel``).
    """
    assert info.url is not None
    try:
        addr = parse_p2p_url(info.url)
        if addr.netname in DIRECT_NETNAMES:
            addr.host_port()
    except ValueError as e:
        raise RemoteUnavailable(f"{info.name}: {e}") from None
    tok = os.environ.get("GIT_ANNEX_P2P_AUTHTOKEN") or token
    if not tok:
        raise RemoteUnavailable(f"{info.name}: no P2P auth token")

    async def connect() -> Link:
        return await open_p2p_link(addr)

    return P2PRemote(info, our_uuid, connect, token=tok)


__all__ = [
    "LOCK_PROOF_SECONDS", "Connector", "P2PClient", "P2PRemote", "earliest_lock_expiry",
    "parse_ssh_url", "shell_command", "shell_words", "ssh_remote", "tcp_remote", "timestamp_of",
]  # fmt: skip
