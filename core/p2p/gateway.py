"""Serving a cluster UUID: the gateway side of clusters.md 5 (thin adapter).

Theory of operation
-------------------
``GatewaySession`` is a ``serving.Session`` whose requests go to the
cluster's nodes instead of the local object store.  The decisions (which
nodes, what to answer) are ``core.p2p.fanout``'s; this module opens node
connections, moves bytes and writes the gateway's location log.

- Nodes are the gateway's remotes configured as nodes of the cluster and
  recorded in cluster.log (dead ones left out), in cost order (5.3).  Each
  node is reached as git-annex reaches it (5.12): a local path by running
  our ``p2pstdio`` on it, an ssh URL by ``git-annex-shell p2pstdio`` over
  ssh with ``--uuid``.  Connections open lazily, at most once per node per
  session; a node that could not be opened stays "unreachable" for the
  session, so one dead node costs one bounded wait (``OPEN_TIMEOUT``), not
  one per request.
- Several nodes are asked in parallel, and every node wait is bounded (the
  node channel's read and write timeouts).  A request goes to each node in
  turn, then their replies are read in turn (``_exchange_each``): the nodes
  work at once, with no task per node, and a silent node costs its read
  timeout, after which the replies of the others are already there.  With
  ``node_jobs`` (p2phttp's ``--clusterjobs``) nodes are asked so in groups of
  that many.  Nodes not yet open are opened first, in parallel (``_ready``).
- Three transports run it: p2pstdio ``--uuid`` (``core.p2p.shell``), the
  TCP listener (a token naming the cluster, ``core.p2p.listener``) and
  HTTP; a long-running gateway (``annexsync p2phttp``) passes
  ``local_nodes`` and serves local nodes in its own process
  (``core.p2phttp.proxy``).  ``proxied_target`` says what a UUID names here.
- PUT streams once from the client: each chunk goes to every target still
  taking part before the next is read (lock-step, 5.6 step 4); a target
  that fails is dropped and the others complete.
- The gateway logs, in its own git-annex branch, exactly the nodes that
  stored (PUT) or removed (REMOVE) content, as each request completes
  (5.13); the journal is committed as ``ServedRepo.record`` does.
- A GET relayed from offset 0 is checked against the key as it streams
  (``_ContentCheck``): a node's corrupted copy is answered INVALID, so the
  client discards it (git-annex's gateway relays it as VALID).
- REMOVE-BEFORE goes to each node with the deadline in that node's clock,
  from the last GETTIMESTAMP of this connection (5.8); a node with no such
  reading is not asked (git-annex passes the deadline unchanged, a time in
  no clock of the node's: a removal past the lock that proves another copy).
- LOCKCONTENT on a cluster: FAILURE (5.9).  NOTIFYCHANGE and CONNECT:
  ``ERROR protocol error`` and the session ends (5.10).
- Differences from git-annex 10.20261026 (section 7), on purpose: an
  unreachable node is skipped instead of failing the whole request; reads
  fall back to the next node logged present; a partial REMOVE is answered
  with FAILURE-PLUS and logged.  Node connections do not send BYPASS (our
  own p2pstdio ignores it; gateway-to-gateway links are not served yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import CoreError
from core.p2p import fanout
from core.p2p.events import PAUSED, Event, Payload, PayloadEnd
from core.p2p.fanout import NodeResult
from core.p2p.messages import (
    AlreadyHave,
    AlreadyHavePlus,
    AuthSuccess,
    CheckPresent,
    Connect,
    Data,
    DataPresent,
    Error,
    Failure,
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
    Success,
    SuccessPlus,
    Timestamp,
    Valid,
)
from core.p2p.remote import P2PClient, parse_ssh_url, shell_command, timestamp_of
from core.p2p.runtime import Channel
from core.p2p.serving import ServedRepo, Session
from core.p2p.transport import Link, open_subprocess, ssh_command
from core.remotes import list_remotes
from core.remotetypes import RemoteInfo
from core.repo.key import Hasher, Key
from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)

OPEN_TIMEOUT = 30.0  # opening one node connection, greeting and VERSION included
NODE_READ_TIMEOUT = 120.0  # one node reply (a node hashing a large PUT answers late)
HASH_BATCH = 1 << 20  # GET content hashed on a helper thread this much at a time


@dataclass(frozen=True)
class Node:
    uuid: str
    name: str
    connect: Callable[[], Awaitable[Link]]


@dataclass(frozen=True)
class ClusterTarget:
    """The cluster a session serves: its UUID and its nodes in cost order."""

    uuid: str
    nodes: tuple[Node, ...]

    @property
    def node_uuids(self) -> list[str]:
        return [n.uuid for n in self.nodes]


def _local_path(repo_path: Path, url: str) -> Path | None:
    """A remote URL that is a local path, resolved; None for ssh and the rest."""
    if url.startswith("file://"):
        url = url[len("file://") :]
    if not url or "://" in url:
        return None
    try:
        parse_ssh_url(url)
    except CoreError:
        return (repo_path / url).resolve()
    return None


def local_node_path(repo: AnnexRepo, uuid: str) -> Path | None:
    """Where the proxied remote ``uuid`` is, when it is a local repository that
    git config still has us proxy (``clustersetup.proxy_configured``)."""
    from core.ops.clustersetup import proxy_configured

    cfg = repo.git.get_config_stack()
    for r in list_remotes(repo):
        if r.uuid == uuid and r.via is None and r.url and proxy_configured(repo, cfg, r):
            path = _local_path(repo.path, r.url)
            if path is not None:
                return path
    return None


# how a long-running gateway (p2phttp) serves a local node in its own process:
# the node's path and the gateway's UUID in, our end of a served session out
LocalNodes = Callable[[Path, str], Awaitable[Link]]


def node_connector(repo_path: Path, info: RemoteInfo, gateway_uuid: str,
                   local_nodes: LocalNodes | None = None) -> Callable[[], Awaitable[Link]]:  # fmt: skip
    """How the gateway reaches one node (5.12).

    A local node is served by our p2pstdio in a subprocess, or, given
    ``local_nodes``, by the same ``serving.Session`` in this process (no
    process to start per connection; the answers are the same).
    """
    local = _local_path(repo_path, info.url or "")
    if local is not None and local_nodes is not None:
        where = local

        async def in_process() -> Link:
            return await local_nodes(where, gateway_uuid)

        return in_process
    if local is not None:

        async def run_local() -> Link:
            return await open_subprocess([sys.executable, "-m", "core.p2p.shell", "p2pstdio",
                                          str(local), gateway_uuid])  # fmt: skip

        return run_local
    try:
        host, port, path = parse_ssh_url(info.url or "")
    except CoreError as e:  # annex+http, tor ...: git-annex cannot proxy to these either (5.12)
        why = e

        async def refuse() -> Link:
            raise why

        return refuse
    command = shell_command("git-annex-shell", path, gateway_uuid, info.uuid)

    async def run_ssh() -> Link:
        return await open_subprocess(ssh_command(host, command, port=port))

    return run_ssh


@dataclass
class _ContentCheck:
    """Whether content a GET relays is the key's: its size, and its hash when
    the GET starts at 0 (from an offset only the client, which holds the
    start, can hash).  A node's corrupted copy is then answered INVALID, which
    the client discards (p2p-protocol 6.7; over HTTP the last byte is held
    back, p2phttp.md 5.2), rather than relayed as valid; git-annex's gateway
    relays the node's VALID unchecked.  Keys without a hash: size only.

    Hashing runs on a helper thread, a batch at a time, while the relay goes
    on (hashlib releases the GIL); at most one batch is in flight."""

    key: Key
    expected: int | None  # bytes the node must send
    hasher: Hasher | None
    seen: int = 0
    _batch: list[bytes] = field(default_factory=list)
    _batched: int = 0
    _hashing: asyncio.Future[None] | None = None

    @classmethod
    def of(cls, key: Key, offset: int) -> _ContentCheck:
        expected = None if key.size is None else max(key.size - offset, 0)
        return cls(key, expected, key.new_hasher() if offset == 0 else None)

    async def update(self, data: bytes) -> None:
        self.seen += len(data)
        if self.hasher is None:
            return
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= HASH_BATCH:
            await self._settle()
            batch, self._batch, self._batched = self._batch, [], 0
            self._hashing = asyncio.get_running_loop().run_in_executor(
                None, _hash_all, self.hasher, batch)  # fmt: skip

    async def _settle(self) -> None:
        hashing, self._hashing = self._hashing, None
        if hashing is not None:
            await hashing

    async def failure(self) -> str | None:
        """Why the content is not the key's; None when it is (as far as known)."""
        await self._settle()
        if self.expected is not None and self.seen != self.expected:
            return f"{self.seen} bytes where {self.expected} were due"
        if self.hasher is not None:
            _hash_all(self.hasher, self._batch)
            if self.hasher.hexdigest() != self.key.expected_digest():
                return "its content does not match the key (a corrupted copy)"
        return None


def _hash_all(hasher: Hasher, batch: list[bytes]) -> None:
    for data in batch:
        hasher.update(data)


@dataclass
class _Put:
    key: Key
    targets: dict[str, P2PClient]  # node uuid -> connection still taking part
    offsets: dict[str, int]
    results: dict[str, NodeResult] = field(default_factory=dict)
    position: int = 0  # bytes of the key the client's stream has reached
    length: int | None = None  # the client's DATA


class GatewaySession(Session):
    """One client connection to a cluster UUID (see the module docstring)."""

    def __init__(self, served: ServedRepo, channel: Channel, target: ClusterTarget, *,
                 open_timeout: float = OPEN_TIMEOUT, node_jobs: int | None = None,
                 **kwargs: object) -> None:  # fmt: skip
        """``node_jobs``: at most this many nodes talked to at once (p2phttp's
        ``--clusterjobs``); None: every node of a request at once."""
        super().__init__(served, channel, **kwargs)  # type: ignore[arg-type]
        self.target = target
        self.open_timeout = open_timeout
        self._node_jobs = node_jobs
        self._nodes: dict[str, P2PClient | NodeResult] = {}  # open, or why not
        self._gput: _Put | None = None
        self._get_node: P2PClient | None = None
        self._stamps: dict[str, int] = {}
        self._own_stamp: int | None = None
        self._closing: list[P2PClient] = []  # dropped mid-request, closed at the end

    # --- node connections ----------------------------------------------------------

    async def _open(self, node: Node) -> P2PClient | NodeResult:
        known = self._nodes.get(node.uuid)
        if isinstance(known, P2PClient) and not known.usable:
            known = NodeResult(node.uuid, error="connection lost", reached=False)
        if known is not None:
            return known
        try:
            async with asyncio.timeout(self.open_timeout):
                link = await node.connect()
                client: P2PClient | NodeResult = await P2PClient.connect(
                    link, our_uuid=self.served.uuid, expect_uuid=node.uuid,
                    read_timeout=NODE_READ_TIMEOUT)  # fmt: skip
        except (CoreError, OSError, TimeoutError) as e:
            e = e if str(e) else TimeoutError(f"no answer in {self.open_timeout:g} s")
            logger.warning("cluster node %s unreachable: %s", node.name, e)
            client = NodeResult(node.uuid, error=f"unreachable: {e}", reached=False)
        self._nodes[node.uuid] = client
        return client

    def _drop(self, uuid: str, why: str) -> NodeResult:
        old = self._nodes.get(uuid)
        result = NodeResult(uuid, error=why, reached=False)
        self._nodes[uuid] = result
        if isinstance(old, P2PClient):
            self._closing.append(old)
        return result

    async def _ready(self, nodes: list[Node]) -> dict[str, P2PClient | NodeResult]:
        """Each node's connection, or why there is none; the ones never tried
        are opened in parallel (one dead node costs one bounded wait)."""
        fresh = [n for n in nodes if n.uuid not in self._nodes]
        if len(fresh) > 1:
            async with asyncio.TaskGroup() as tg:
                for n in fresh:
                    tg.create_task(self._open(n))
        return {n.uuid: await self._open(n) for n in nodes}

    async def _exchange_each(self, nodes: list[Node], events: Callable[[Node], tuple[Message, ...]],
                             judge: Callable[[Node, P2PClient, list[Event]], NodeResult],
                             ) -> list[NodeResult]:  # fmt: skip
        """Send each node ``events(node)`` and ``judge`` its reply; results in
        ``nodes``' order.  In groups of ``node_jobs`` nodes (all of them without
        it): sent to each, then the replies read in turn (module docstring).
        A node whose send, reply or ``judge`` fails (CoreError, OSError,
        TimeoutError) is dropped for the session."""
        clients = await self._ready(nodes)
        out: dict[str, NodeResult] = {}
        group = self._node_jobs or len(nodes) or 1
        for start in range(0, len(nodes), group):
            asked: list[tuple[Node, P2PClient]] = []
            for node in nodes[start : start + group]:
                client = clients[node.uuid]
                if isinstance(client, NodeResult):
                    out[node.uuid] = client
                    continue
                try:
                    await client.ch.send(*events(node))
                    asked.append((node, client))
                except (CoreError, OSError, TimeoutError) as e:
                    out[node.uuid] = self._drop(node.uuid, str(e))
            for node, client in asked:
                try:
                    out[node.uuid] = judge(node, client, await client.reply())
                except (CoreError, OSError, TimeoutError) as e:
                    out[node.uuid] = self._drop(node.uuid, str(e))
        return [out[n.uuid] for n in nodes]

    def _by_uuid(self, uuids: list[str]) -> list[Node]:
        return [n for n in self.target.nodes if n.uuid in uuids]

    # --- requests -------------------------------------------------------------------

    async def _request(self, msg: Message) -> None:  # noqa: C901 - one branch per request
        if isinstance(msg, CheckPresent):
            await self.ch.send(Success() if await self._check_present(msg.key) else Failure())
        elif isinstance(msg, Get):
            await self._relay_get(msg)
        elif isinstance(msg, (Success, Failure)) and self._get_node is not None:
            node, self._get_node = self._get_node, None
            with contextlib.suppress(CoreError, OSError):
                await node.ch.send(msg)
        elif isinstance(msg, Put):
            await self._fan_put(msg)
        elif isinstance(msg, Data):
            await self._put_data(msg.length)
        elif isinstance(msg, DataPresent):
            await self._put_finish(DataPresent())
        elif isinstance(msg, (Remove, RemoveBefore)):
            await self._remove(msg)
        elif isinstance(msg, GetTimestamp):
            await self._timestamp()
        elif isinstance(msg, LockContent):
            await self.ch.send(Failure())  # 5.9: lock a node, not the cluster
        elif isinstance(msg, (NotifyChange, Connect)):
            await self._refuse_proxied()  # 5.10
        elif isinstance(msg, Error):
            await self._abandon()

    def _logged(self, key: Key) -> list[str]:
        return fanout.read_candidates(self.target.node_uuids, self.served.repo.state.locations(key))

    async def _check_present(self, key: Key) -> bool:
        """Ask the nodes logged present, cheapest first, until one answers (5.4)."""
        candidates = await asyncio.to_thread(self._logged, key)
        for node in self._by_uuid(candidates):
            client = await self._open(node)
            if isinstance(client, NodeResult):
                continue
            try:
                return await client.check_present(key)
            except (CoreError, OSError, TimeoutError) as e:
                self._drop(node.uuid, str(e))
        return False

    # --- GET (5.5) -----------------------------------------------------------------

    async def _relay_get(self, msg: Get) -> None:
        candidates = await asyncio.to_thread(self._logged, msg.key)
        for node in self._by_uuid(candidates):
            client = await self._open(node)
            if isinstance(client, NodeResult):
                continue
            try:
                if await self._get_from(node, client, msg):
                    return
            except (CoreError, OSError, TimeoutError) as e:
                self._drop(node.uuid, str(e))
        await self.ch.send(Data(0), Invalid())

    async def _get_from(self, node: Node, client: P2PClient, msg: Get) -> bool:
        """Relay the node's DATA; False (nothing sent) when it lacks the content.

        Once bytes went to the client a node failure cannot be hidden: the
        session ends and the client resumes on its next GET.  Content relayed
        from its start is checked against the key (``_ContentCheck``).
        """
        await client.ch.send(msg)
        first = await client.next()
        if not isinstance(first, Data):
            raise CoreError(f"GET: unexpected {first!r}")
        if first.length == 0:
            end = await client.next()
            if isinstance(end, PayloadEnd) and end.valid is False:
                await client.next()  # PAUSED: our answer is due
                await client.ch.send(Failure())
                return False
            await self.ch.send(Data(0))
            await self._relay_end(end, client, None)
            return True
        self._get_node = client
        check = _ContentCheck.of(msg.key, msg.offset)
        await self.ch.send(first)
        while True:
            ev = await client.next()
            if isinstance(ev, Payload):
                await check.update(ev.data)
                await self.ch.send(ev)
                continue
            why = await check.failure()
            if why is not None and isinstance(ev, PayloadEnd) and ev.valid:
                logger.warning("cluster node %s sent %s: %s; answered INVALID", node.name,
                               msg.key, why)  # fmt: skip
            await self._relay_end(ev, client, why)
            return True

    async def _relay_end(self, ev: object, client: P2PClient, bad: str | None) -> None:
        """The node's VALID/INVALID to the client; INVALID whenever ``bad`` says
        the content is not the key's (p2phttp.md 5.2: the client discards it)."""
        self._get_node = client
        if isinstance(ev, PayloadEnd):
            await self.ch.send(Valid() if ev.valid and bad is None else Invalid())
            await client.next()  # PAUSED: the node waits for the client's answer
        elif ev is not PAUSED:
            raise CoreError(f"GET: unexpected {ev!r}")

    # --- PUT (5.6) -----------------------------------------------------------------

    def _wants(self, key: Key, file: str) -> Callable[[str], bool]:
        from core.ops.transfer import _wanted  # one definition of "wants" (transfer)

        repo = self.served.repo
        preferred = repo.state.preferred_content()
        return lambda uuid: _wanted(repo, key, file, uuid, preferred.get(uuid))

    async def _fan_put(self, msg: Put) -> None:
        file = msg.file.decode("utf-8", "surrogateescape")

        def choose() -> list[str]:
            present = self.served.repo.state.locations(msg.key)
            return fanout.put_targets(self.target.node_uuids, present, self._wants(msg.key, file))

        targets = self._by_uuid(await asyncio.to_thread(choose))

        def offer(node: Node, client: P2PClient, reply: list[Event]) -> NodeResult:
            (answer,) = reply
            if isinstance(answer, PutFrom):
                put.offsets[node.uuid] = answer.offset
                put.targets[node.uuid] = client
                return NodeResult(node.uuid)
            if isinstance(answer, (AlreadyHave, AlreadyHavePlus)):
                return NodeResult(node.uuid, already=True, plus=getattr(answer, "uuids", ()))
            return NodeResult(node.uuid, error=getattr(answer, "text", None) or "refused")

        put = _Put(msg.key, {}, {})
        results = await self._exchange_each(targets, lambda node: (msg,), offer)
        version = self.ch.conn.version
        answer = fanout.offer_answer(self.target.uuid, version, results)
        if answer is not None or not put.targets:
            self._log_failures(msg.key, results)
            await self.ch.send(answer or fanout.no_taker(results))
            return
        put.results = {r.node: r for r in results if r.node not in put.targets}
        put.position = min(put.offsets.values())
        self._gput = put
        await self.ch.send(PutFrom(put.position))

    async def _put_data(self, length: int) -> None:
        put = self._gput
        if put is None:
            return
        put.length = length
        total = put.position + length
        # No reply to wait for: each in turn, no task per node (a DATA line
        # only waits when that node's buffer is full).
        for uuid, client in list(put.targets.items()):
            try:
                await client.ch.send(Data(max(total - put.offsets[uuid], 0)))
            except (CoreError, OSError, TimeoutError) as e:
                put.targets.pop(uuid, None)
                put.results[uuid] = self._drop(uuid, str(e))

    async def _payload(self, data: bytes) -> None:
        put = self._gput
        if put is None:
            return
        start, put.position = put.position, put.position + len(data)
        # One target after the other, no task per chunk: a write only waits when
        # that node's buffer is full, and the chunk must reach every target
        # before the next is read anyway (lock-step, 5.6 step 4).
        for uuid, client in list(put.targets.items()):
            skip = max(put.offsets[uuid] - start, 0)
            if skip >= len(data):
                continue
            try:
                await client.ch.send(Payload(data[skip:] if skip else data))
            except (CoreError, OSError, TimeoutError) as e:
                put.targets.pop(uuid, None)
                put.results[uuid] = self._drop(uuid, str(e))

    async def _put_done(self, valid: bool | None) -> None:
        await self._put_finish(Invalid() if valid is False else Valid())

    async def _put_finish(self, end: Message) -> None:
        put, self._gput = self._gput, None
        if put is None:
            return

        def finish(node: Node, client: P2PClient, reply: list[Event]) -> NodeResult:
            (answer,) = reply
            if isinstance(answer, (Success, SuccessPlus)):
                return NodeResult(node.uuid, ok=True, plus=getattr(answer, "uuids", ()))
            return NodeResult(node.uuid, error=getattr(answer, "text", None) or "refused")

        for r in await self._exchange_each(self._by_uuid(list(put.targets)), lambda node: (end,),
                                           finish):  # fmt: skip
            put.results[r.node] = r
        results = [put.results[u] for u in self.target.node_uuids if u in put.results]
        stored = fanout.collected(self.target.uuid, results)
        if stored:
            await asyncio.to_thread(self.served.record, put.key, True, stored)
        abandoned = isinstance(end, Invalid) and put.length == 0
        # DATA 0 + INVALID is the agreed abandon (a putoffset probe): each
        # node's FAILURE is its agreement, not a failure to log
        self._log_failures(put.key, [r for r in results if not abandoned or not r.reached])
        await self.ch.send(fanout.put_answer(self.target.uuid, self.ch.conn.version, results))

    def _log_failures(self, key: Key, results: list[NodeResult]) -> None:
        names = {n.uuid: n.name for n in self.target.nodes}
        for line in fanout.describe(results, names):
            logger.warning("%s: %s", key, line)

    # --- REMOVE, GETTIMESTAMP (5.7, 5.8) ----------------------------------------------

    async def _remove(self, msg: Remove | RemoveBefore) -> None:
        def request(node: Node) -> tuple[Message, ...]:
            if not isinstance(msg, RemoveBefore):
                return (msg,)
            assert self._own_stamp is not None  # else not asked (below)
            before = self._stamps[node.uuid] + (msg.timestamp - self._own_stamp)
            return (RemoveBefore(before, msg.key),)

        def result(node: Node, client: P2PClient, reply: list[Event]) -> NodeResult:
            (r,) = reply
            ok = isinstance(r, (Success, SuccessPlus))
            return NodeResult(node.uuid, ok=ok, plus=getattr(r, "uuids", ()),
                              error=None if ok else (getattr(r, "text", None) or "refused"))

        asked, unstamped = list(self.target.nodes), []
        if isinstance(msg, RemoveBefore):  # a deadline in no node's clock: not asked
            def known(n: Node) -> bool:  # stamped, or down (said as such by _exchange_each)
                return (self._own_stamp is not None and n.uuid in self._stamps
                        or isinstance(self._nodes.get(n.uuid), NodeResult))
            asked = [n for n in asked if known(n)]
            unstamped = [NodeResult(n.uuid, error="REMOVE-BEFORE without its GETTIMESTAMP")
                         for n in self.target.nodes if not known(n)]  # fmt: skip
        results = [*await self._exchange_each(asked, request, result), *unstamped]
        removed = fanout.collected(self.target.uuid, results)
        if removed:
            await asyncio.to_thread(self.served.record, msg.key, False, removed)
        self._log_failures(msg.key, results)
        await self.ch.send(fanout.remove_answer(self.target.uuid, self.ch.conn.version, results))

    async def _timestamp(self) -> None:
        def stamp(node: Node, client: P2PClient, reply: list[Event]) -> NodeResult:
            self._stamps[node.uuid] = timestamp_of(reply)
            return NodeResult(node.uuid, ok=True)

        await self._exchange_each(list(self.target.nodes), lambda node: (GetTimestamp(),), stamp)
        self._own_stamp = self.served.clock()
        await self.ch.send(Timestamp(self._own_stamp))

    # --- the end ------------------------------------------------------------------------

    async def _abandon(self) -> None:
        """Close node connections a PUT left mid-stream; at session end, all."""
        put, self._gput = self._gput, None
        if put is not None:
            for uuid in list(put.targets):
                self._drop(uuid, "the client abandoned the PUT")
        await super()._abandon()

    async def run(self, *, greet: bool) -> None:
        """As ``Session.run``; the greeting names the cluster, not the gateway (5.2)."""
        try:
            if greet:
                await self.ch.send(AuthSuccess(self.target.uuid))
            await super().run(greet=False)
        finally:
            clients = [c for c in self._nodes.values() if isinstance(c, P2PClient)]
            clients += self._closing
            async with asyncio.TaskGroup() as tg:
                for c in clients:
                    tg.create_task(c.aclose())


def cluster_target(repo: AnnexRepo, uuid: str,
                   local_nodes: LocalNodes | None = None) -> ClusterTarget | None:  # fmt: skip
    """The cluster ``uuid`` as this gateway serves it (5.1, 5.3), or None.

    Its nodes: remotes configured as nodes of a cluster name that maps to
    ``uuid`` here and recorded for it in cluster.log (dead ones left out),
    cheapest first.
    """
    from core.ops.clustersetup import _nodes, my_clusters

    names = [n for n, u in my_clusters(repo).items() if u == uuid]
    recorded = repo.state.clusters().nodes.get(uuid)
    if not names or recorded is None:
        return None
    configured = _nodes(repo, repo.git.get_config_stack())
    infos = {r.uuid: r for n in names for r in configured.get(n, []) if r.uuid in recorded}
    nodes = sorted(infos.values(), key=lambda r: r.cost)
    return ClusterTarget(uuid, tuple(
        Node(r.uuid or "", r.name, node_connector(repo.path, r, repo.uuid, local_nodes))
        for r in nodes))


class NotProxied(CoreError):
    """A UUID this gateway does not serve (clusters.md 5.1), in git-annex-shell's words."""


def proxied_target(repo: AnnexRepo, uuid: str,
                   local_nodes: LocalNodes | None = None) -> ClusterTarget | Path:  # fmt: skip
    """What ``uuid`` names at this gateway (clusters.md 5.1).

    Only UUIDs in the gateway's own proxy.log entry: a cluster it is a
    gateway of (served by ``GatewaySession``), or a proxied remote that is a
    local repository git config still has it proxy (its path: served as it
    is, the same answers a relay would give).  A proxied ssh or special
    remote is not served yet.

    Raises:
        NotProxied: anything else.
    """
    proxied = {p.uuid for p in repo.state.proxies().get(repo.uuid, frozenset())}
    if uuid not in proxied:
        raise NotProxied(f"expected repository UUID {uuid} but found UUID {repo.uuid}")
    target = cluster_target(repo, uuid, local_nodes) or local_node_path(repo, uuid)
    if target is None:
        raise NotProxied(f"not configured to proxy for repository {uuid} (annexsync proxies "
                         "clusters, and local repositories whose remote has annex-proxy "
                         "or is a node of a cluster here)")  # fmt: skip
    return target


def open_proxied(path: Path, uuid: str) -> AnnexRepo:
    """The proxied local repository ``uuid`` at ``path`` (``proxied_target``'s
    answer), opened; the caller closes it.

    Raises:
        NotProxied: another repository is there now.
        RepoError: none is.
    """
    repo = AnnexRepo.open(path, auto_init=False)
    if repo.uuid != uuid:
        repo.close()
        raise NotProxied(f"expected repository UUID {uuid} but found UUID {repo.uuid}")
    return repo


__all__ = ["ClusterTarget", "GatewaySession", "LocalNodes", "Node", "NotProxied", "cluster_target",
           "local_node_path", "node_connector", "open_proxied", "proxied_target"]
