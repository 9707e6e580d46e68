"""Clusters over the P2P HTTP API: ``annexsync p2phttp`` as a cluster gateway.

Spec: clusters.md 10 (p2phttp serving of proxied and cluster UUIDs), 5
(the gateway's rules), p2phttp.md 5 (the endpoints).

Theory of operation
-------------------
git-annex's p2phttp turns each request for a cluster UUID into the P2P
exchange the line protocol would run, on a pooled proxy connection
(clusters.md 10).  We do the same, in process: a ``ClusterPool`` holds P2P
client connections to ``core.p2p.gateway.GatewaySession``s running in this
process, each joined to its session by an in-process pipe (``core.p2p.pipe``:
a socket pair's bytes without the system calls).  Every gateway rule (which
nodes, the answers, the gateway's location log, nodes that are down) is
therefore the one ``gateway`` and ``fanout`` implement for p2pstdio, not a
second copy; this module only translates HTTP to P2P and back.

- The sessions are tasks of ``SessionHost``'s TaskGroup, one long task the
  app's cleanup context starts and cancels (style 5: every task has an
  owner).  A session that fails ends alone; its client sees the connection
  close.
- A request takes a connection from the pool and gives it back idle when
  the exchange completed in step, up to ``keep`` idle ones
  (``--proxyconnections``); any other end closes it, and its session closes
  its node connections.  An idle connection keeps its node connections open,
  so the client's checkpresent, putoffset and put of one file cost no new
  node processes.
- Local nodes (the usual kind) are served in this process too, by the same
  ``serving.Session`` our p2pstdio runs (``local_nodes``), sharing the
  ``ServedRepo`` a direct request to that node uses: no process is started
  per pooled connection.  ssh nodes are reached as p2pstdio reaches them.
- Every wait is bounded: reads from the session by ``READ_TIMEOUT`` (longer
  than a node's own reply timeout, so a slow node is given up by the
  session, which then answers), the request body by the server's pace.

Request -> exchange (answers shaped per API version by ``models``):

- ``checkpresent``: CHECKPRESENT.
- ``key``: GET; ``DATA n`` gives ``X-git-annex-data-length``, the last byte
  is held back until VALID and left out on INVALID (p2phttp.md 5.2);
  ``DATA 0`` + INVALID (no node has it) is the empty 200 git-annex sends.
- ``putoffset``: PUT; ALREADY-HAVE(-PLUS): ``alreadyhave``.  A PUT-FROM
  offer is kept open on its connection for ``PARK_SECONDS`` (``_Parked``):
  git-annex's client sends the ``put`` of that key right after, and it
  continues the same PUT, so the nodes are offered the key once per file, not
  twice.  (git-annex's gateway abandons the probe with ``DATA 0`` + INVALID
  and asks again, clusters.md 10: the same answers, one exchange with every
  node more.)  An offer left waiting is abandoned so (``DATA 0`` + INVALID)
  once it is older than that, when another request comes or at the end; an
  open offer holds no lock at any node (they lock at DATA).
- ``put``: PUT (or the open offer of a putoffset), ``DATA`` from the body
  (skipping what the nodes already hold), VALID only when the body had
  exactly ``X-git-annex-data-length`` bytes; a body cut short closes the
  connection, which abandons the PUT at every node (their partial files stay
  for resume).  ``data-present``: DATA-PRESENT.
- ``remove``: REMOVE.  ``remove-before``: GETTIMESTAMP, then REMOVE-BEFORE on
  the same connection, so the session translates the client's deadline to
  each node's clock with fresh readings (clusters.md 5.8).
- ``gettimestamp``: the gateway's own clock, as a gateway answers (5.8).
- ``lockcontent``: ``{"locked":false}`` without asking anyone (5.9: lock a
  node, not the cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import HttpVersion11, web

from core.errors import CoreError, RemoteRefused, RemoteUnavailable
from core.p2p.events import PAUSED, Payload, PayloadEnd
from core.p2p.gateway import GatewaySession, LocalNodes, cluster_target
from core.p2p.messages import (
    AlreadyHave,
    AlreadyHavePlus,
    Data,
    DataPresent,
    Failure,
    FailurePlus,
    Get,
    Invalid,
    Message,
    Put,
    PutFrom,
    Success,
    SuccessPlus,
    Valid,
)
from core.p2p.pipe import memory_streams
from core.p2p.remote import P2PClient
from core.p2p.runtime import Channel, P2PTimeout
from core.p2p.serving import ServedRepo, Session, new_server_connection
from core.p2p.transport import Link
from core.p2phttp import models as m
from core.repo.key import Key
from core.repo.objects import write_batch

if TYPE_CHECKING:
    from core.p2phttp.server import Settings

logger = logging.getLogger(__name__)

READ_TIMEOUT = 300.0  # a reply from the session: above the gateway's node timeouts
WIDE_READ = 4 << 20  # all a pipe buffers (twice its limit, plus a line or two)
PARK_SECONDS = 10.0  # a putoffset's open offer waits this long for its put


class SessionHost:
    """Owns the in-process gateway sessions: one task holding a TaskGroup."""

    def __init__(self) -> None:
        self._tg: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="p2phttp-sessions")
        await self._ready.wait()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self._ready.set()
            await asyncio.Future()  # until cancelled by aclose

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` as a child; its failure is logged and ends only it.

        Raises:
            CoreError: the host is not running (the server is stopping).
        """
        if self._tg is None or self._task is None or self._task.done():
            coro.close()
            raise CoreError("the server is stopping")
        self._tg.create_task(_alone(coro, name), name=name)

    async def aclose(self) -> None:
        """Cancel every session; each closes its node connections in ``finally``."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._tg = None


async def _alone(coro: Coroutine[Any, Any, None], name: str) -> None:
    try:
        await coro
    except Exception as e:  # noqa: BLE001 - one session's failure is its own
        logger.info("%s ended: %s", name, e)


class _WideChannel(Channel):
    """A server channel that reads whatever the pipe holds at once: a payload
    chunk written whole arrives as one payload event (the P2P machine cuts
    payloads at whatever the read returned), so a node writes it without
    joining pieces."""

    async def _read(self, deadline: float, limit: float) -> bytes:
        try:
            async with asyncio.timeout_at(deadline):
                return await self.reader.read(WIDE_READ)
        except TimeoutError:
            raise P2PTimeout(f"waiting for {self.peer}", limit) from None
        except (ConnectionError, OSError):
            return b""


async def _serve_pair(host: SessionHost, served: ServedRepo,
                      make: Callable[[Channel], Session], name: str) -> Link:
    """A session of ``make`` run by ``host`` over an in-process pipe; our end of it."""
    (sr, sw), (cr, cw) = memory_streams()
    channel = _WideChannel(new_server_connection(served), sr, sw, peer=name)
    host.spawn(make(channel).run(greet=True), name)
    return Link(cr, cw, name)


def local_nodes(host: SessionHost, served_for: Callable[[Path], ServedRepo]) -> LocalNodes:
    """Local cluster nodes served in this process (``gateway.node_connector``).

    ``served_for`` gives the node's shared ``ServedRepo`` (blocking; raises
    ``CoreError`` when the path is no repository): a node proxied directly
    and the same node inside the cluster share one lock table.
    """

    async def connect(path: Path, gateway_uuid: str) -> Link:
        try:
            served = await asyncio.to_thread(served_for, path)
        except CoreError as e:
            raise RemoteUnavailable(f"cannot open the node at {path}: {e}") from e
        return await _serve_pair(host, served,
                                 lambda ch: Session(served, ch, client_uuid=gateway_uuid),
                                 f"node {path.name}")  # fmt: skip

    return connect


class ClusterPool:
    """Pooled connections to in-process gateway sessions serving one cluster.

    Args:
        served: the gateway repository (its location log gets the nodes' lines).
        uuid: the cluster.
        host: where the sessions run.
        keep: idle connections kept (``--proxyconnections``).
        node_jobs: nodes talked to at once per request (``--clusterjobs``).
        nodes: how local nodes are reached (in process); None: our p2pstdio.
    """

    def __init__(self, served: ServedRepo, uuid: str, host: SessionHost, *,
                 keep: int, node_jobs: int | None, nodes: LocalNodes | None = None) -> None:  # fmt: skip
        self.served = served
        self.uuid = uuid
        self.host = host
        self.keep = max(keep, 1)
        self.node_jobs = node_jobs
        self.nodes = nodes
        self._idle: list[P2PClient] = []
        self._parked: dict[Key, _Parked] = {}  # at most ``keep``

    async def _open(self) -> P2PClient:
        """A new session (cluster membership read now, 5.13) and our end of it."""
        target = await asyncio.to_thread(cluster_target, self.served.repo, self.uuid, self.nodes)
        if target is None:
            raise m.HttpError(404)  # no longer a cluster of this gateway
        link = await _serve_pair(
            self.host, self.served,
            lambda ch: GatewaySession(self.served, ch, target, node_jobs=self.node_jobs),
            f"cluster {self.uuid}")  # fmt: skip
        return await P2PClient.connect(link, our_uuid=self.served.uuid, expect_uuid=self.uuid,
                                       read_timeout=READ_TIMEOUT)  # fmt: skip

    @contextlib.asynccontextmanager
    async def connection(self, put: Key | None = None) -> AsyncIterator[_Lease]:
        """A connection for one request; back to the pool only if it ended in
        step, or parked with its open offer (``_Lease.park``).  ``put``: the
        key of a put, which takes over a putoffset's open offer of it."""
        await self._expire(time.monotonic())
        parked = self._parked.pop(put, None) if put is not None else None
        lease = None
        if parked is not None and parked.client.usable:
            lease = _Lease(parked.client, parked.offer)
        elif parked is not None:
            await parked.client.aclose()
        while self._idle and lease is None:
            c = self._idle.pop()
            if c.usable:
                lease = _Lease(c)
            else:
                await c.aclose()
        if lease is None:
            lease = _Lease(await self._open())
        done = False
        try:
            yield lease
            done = True
        finally:
            if done and lease.parked is not None and lease.offer and lease.client.usable:
                until = time.monotonic() + PARK_SECONDS
                await self._park(lease.parked, _Parked(lease.client, lease.offer, until))
            else:
                await self._give_back(lease.client, done)

    async def _give_back(self, client: P2PClient, in_step: bool) -> None:
        if in_step and client.usable and len(self._idle) < self.keep:
            self._idle.append(client)
        else:
            await client.aclose()

    async def _park(self, key: Key, parked: _Parked) -> None:
        old = self._parked.pop(key, None)
        self._parked[key] = parked
        if old is not None:
            await self._abandon(old)
        while len(self._parked) > self.keep:  # the oldest first (insertion order)
            await self._abandon(self._parked.pop(next(iter(self._parked))))

    async def _expire(self, now: float) -> None:
        for key in [k for k, p in self._parked.items() if p.until <= now]:
            parked = self._parked.pop(key, None)  # another request may have taken it meanwhile
            if parked is not None:
                await self._abandon(parked)

    async def _abandon(self, parked: _Parked) -> None:
        """End an open offer as git-annex's probe does: DATA 0 + INVALID."""
        try:
            await parked.client.exchange(Data(0), Invalid())
        except (CoreError, OSError) as e:
            logger.info("abandoning an open offer: %s", e)
            await parked.client.aclose()
            return
        await self._give_back(parked.client, True)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        parked, self._parked = list(self._parked.values()), {}
        for c in [*idle, *(p.client for p in parked)]:
            await c.aclose()  # a closed connection abandons its open offer at every node


@dataclass
class _Lease:
    """A pooled connection lent to one request, with the open offer it took over."""

    client: P2PClient
    offer: PutFrom | None = None  # a putoffset's PUT-FROM, its PUT still open
    parked: Key | None = None  # set by a putoffset: keep ``offer`` open for its put

    def park(self, key: Key, offer: PutFrom) -> None:
        self.offer, self.parked = offer, key


@dataclass
class _Parked:
    client: P2PClient
    offer: PutFrom
    until: float  # monotonic: abandoned from then on


# --- requests ---------------------------------------------------------------------


class _CutShort(Exception):
    """The client's body ended inside DATA: the connection must not be reused."""


async def handle(request: web.Request, req: m.ApiRequest, pool: ClusterPool,
                 settings: Settings) -> web.StreamResponse:  # fmt: skip
    """Run one API request against the cluster (module docstring).

    Raises:
        HttpError: for the server to answer.
    """
    if req.op is m.Op.LOCKCONTENT:
        return _json(m.locked_body(None))
    if req.op is m.Op.GETTIMESTAMP:
        return _json(m.timestamp_body(pool.served.clock()))
    try:
        async with pool.connection(_key(req) if req.op is m.Op.PUT else None) as lease:
            if req.op is m.Op.KEY:
                return await _download(request, req, lease.client)
            return _json(await _exchange(request, req, lease, settings))
    except _CutShort:
        return _json(m.stored_body(req.api_version, False))
    except RemoteRefused as e:
        raise m.HttpError(500, str(e)) from e


async def _exchange(request: web.Request, req: m.ApiRequest, lease: _Lease,
                    settings: Settings) -> m.Json:  # fmt: skip
    key, v, c = _key(req), req.api_version, lease.client
    if req.op is m.Op.CHECKPRESENT:
        return m.present_body(await c.check_present(key))
    if req.op in (m.Op.REMOVE, m.Op.REMOVE_BEFORE):
        if req.timestamp is not None:
            await c.timestamp()  # fresh node readings for the translation (5.8)
        try:
            removed, plus = await c.remove_plus(key, req.timestamp)
        except RemoteRefused as e:  # ERROR: nothing removed anywhere
            logger.info("remove %s from cluster: %s", key, e)
            removed, plus = False, ()
        return m.removed_body(v, removed, plus)
    offer = lease.offer or await _offer(c, req, key)
    if not isinstance(offer, PutFrom):
        done = isinstance(offer, (AlreadyHave, AlreadyHavePlus))
        if req.op is m.Op.PUTOFFSET:
            return m.offset_body(v, None if done else 0, _plus(offer))
        return m.stored_body(v, done, _plus(offer))
    if req.op is m.Op.PUTOFFSET:
        lease.park(key, offer)  # open for the put that follows (module docstring)
        return m.offset_body(v, offer.offset)
    reply: object
    if req.data_present:
        (reply,) = await c.exchange(DataPresent())
    else:
        reply = await _send_body(request, req, c, offer.offset, settings)
    return m.stored_body(v, isinstance(reply, (Success, SuccessPlus)), _plus(reply))


async def _offer(c: P2PClient, req: m.ApiRequest, key: Key) -> Message:
    file = (req.associated_file or "").encode("utf-8", "surrogateescape")
    (offer,) = await c.exchange(Put(file, key))
    assert isinstance(offer, Message)
    return offer


async def _send_body(request: web.Request, req: m.ApiRequest, c: P2PClient, have: int,
                     settings: Settings) -> object:  # fmt: skip
    """Stream the body from offset ``have`` as DATA; the session's final reply.

    Raises:
        _CutShort: the body ended early (the connection is then closed,
            which abandons the PUT at every node).
    """
    start, length = req.offset or 0, req.data_length or 0
    if have < start:  # the nodes lost bytes the body does not repeat
        await c.exchange(Data(0), Invalid())
        return Failure()
    skip = have - start
    await c.ch.send(Data(max(length - skip, 0)))
    received = 0
    pace = settings.pace()
    loop = asyncio.get_running_loop()
    gathered = _Gathered(c, write_batch(_key(req).size))
    while received <= length:
        try:
            async with asyncio.timeout_at(pace.deadline()):
                chunk = await request.content.read(gathered.batch)
        except Exception as e:  # noqa: BLE001 - a stall or a broken body: cut short
            logger.info("put %s cut short: %s", req.key, e or type(e).__name__)
            with contextlib.suppress(CoreError, OSError):  # the nodes keep it for resume
                await gathered.flush()
            raise _CutShort from e
        pace.moved(len(chunk), loop.time())
        if not chunk:
            break
        part = memoryview(chunk)[: max(length - received, 0)]
        received += len(chunk)
        if skip:
            cut = min(skip, len(part))
            part, skip = part[cut:], skip - cut
        await gathered.add(chunk if len(part) == len(chunk) else bytes(part))
    await gathered.flush()
    if received < length:
        raise _CutShort
    (reply,) = await c.exchange(Valid() if received == length else Invalid())
    return reply


class _Gathered:
    """Body chunks sent on as payload chunks of about ``batch`` bytes (what a
    node writes at once, ``objects.write_batch``): one join here instead of
    one at every node, and fewer events on every hop."""

    def __init__(self, c: P2PClient, batch: int) -> None:
        self.c = c
        self.batch = batch
        self.parts: list[bytes] = []
        self.size = 0

    async def add(self, data: bytes) -> None:
        if data:
            self.parts.append(data)
            self.size += len(data)
        if self.size >= self.batch:
            await self.flush()

    async def flush(self) -> None:
        if self.parts:
            data = b"".join(self.parts)
            self.parts.clear()
            self.size = 0
            await self.c.ch.send(Payload(data))


async def _download(request: web.Request, req: m.ApiRequest, c: P2PClient) -> web.StreamResponse:
    """GET relayed; the body length is the validity signal (p2phttp.md 5.2)."""
    file = (req.associated_file or "").encode("utf-8", "surrogateescape")
    await c.ch.send(Get(req.offset or 0, file, _key(req)))
    first = await c.next()
    if not isinstance(first, Data):
        raise RemoteRefused(f"GET from the cluster: unexpected {first!r}")
    resp = web.StreamResponse(headers={"Content-Type": m.OCTET_STREAM,
                                       m.DATA_LENGTH: str(first.length)})  # fmt: skip
    if request.version >= HttpVersion11:
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        valid, held = await _relay_payload(c, resp, send=request.method != "HEAD")
        await c.ch.send(Success() if valid else Failure())
    except CoreError as e:  # the response has started: all we can do is hang up
        raise ConnectionError(f"GET from the cluster: {e}") from e
    if valid and held:
        await resp.write(held)
    await resp.write_eof()
    return resp


async def _relay_payload(c: P2PClient, resp: web.StreamResponse, *,
                         send: bool) -> tuple[bool, bytes]:  # fmt: skip
    """Write the payload but its last byte; whether VALID came, and that byte."""
    held = b""
    while True:
        ev = await c.next()
        if not isinstance(ev, Payload):
            break
        if send and ev.data:
            if held:
                await resp.write(held)
            await resp.write(memoryview(ev.data)[:-1])
            held = ev.data[-1:]
    if await c.next() is not PAUSED:
        raise RemoteRefused("GET from the cluster: no turn after the data")
    return isinstance(ev, PayloadEnd) and ev.valid is True, held


def _key(req: m.ApiRequest) -> Key:
    assert req.key is not None
    return req.key


def _plus(reply: object) -> tuple[str, ...]:
    if isinstance(reply, (SuccessPlus, FailurePlus, AlreadyHavePlus)):
        return reply.uuids
    return ()


def _json(body: m.Json) -> web.Response:
    return web.Response(body=m.dump(body), headers={"Content-Type": m.JSON_CONTENT_TYPE})


__all__ = ["READ_TIMEOUT", "ClusterPool", "SessionHost", "handle"]

