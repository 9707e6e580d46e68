"""``annexsync p2phttp``: the git-annex P2P HTTP API served with aiohttp.

Spec: the reference notes p2phttp.md sections 3 (server), 5 (endpoints), 6
(authorisation), 7 (status codes), 9 (pitfalls).

Theory of operation
-------------------
``make_app(settings)`` builds the ``web.Application`` (style 2: app factory,
typed ``web.AppKey``s); ``start_server`` runs it with a runner and a site and
returns a ``RunningServer`` whose ``aclose`` stops it.  One catch-all route
hands every request to ``handle``, which only translates: parse the raw
request target (``models.parse_request``), find the repository by UUID
(``Repositories``: one repository, or every repository below ``--directory``
rescanned when an unknown UUID is asked for, spec 2.2), decide access
(``auth.AuthPolicy``), then run one handler.  ``HttpError`` becomes its
status and plain-text body; anything unexpected is ``500 Something went
wrong``, as git-annex answers (spec 7.2).

A gateway repository's clusters and proxied local repositories are served
too (clusters.md 10): each cluster by ``proxy.ClusterPool`` (the P2P
gateway's own rules, through an in-process session), each proxied local
repository directly as a repository of its own, as p2pstdio serves them.
Both are found at start (``Repositories._add_proxied``).

Repository semantics are ``core.p2p.serving.ServedRepo``'s, the same object
the P2P server uses and already checked against git-annex: content locks with
``.rtm`` retention, removal refused while locked, remove-before against the
boot clock, location log and branch commit after a store or removal.  All
blocking work runs in a thread through ``Served.run``.  The location line is
journaled before the reply; the branch commit is the committer task's
(``_commit_settled``, one per server): once a repository's lines settle,
so a burst of uploads costs each repository one commit, off the requests'
path (``ServedRepo.commit_later``).

Resources, all bounded and released in ``finally`` (nothing grows with the
number of requests served):

- ``jobs`` worker slots per repository (``-J``): a slot is held while a
  request's blocking work (files, git) runs in a thread, never while waiting
  for a client's network, so slow or stalled clients cannot keep others
  waiting (spec 3 says git-annex holds a worker for the whole request, and a
  stalled client holds it forever: a documented departure).
- Connections: at most ``max_connections``, counted at accept; at the cap
  the oldest connection that is not inside a request makes room
  (``gate``).  Request headers must be complete ``header_timeout`` after
  connecting or after the previous response.
- ``LockTable``: at most ``--lockedfiles`` locks; a lock expires
  ``lock_seconds`` (600) after ``lockcontent`` unless a ``keeplocked`` for it
  starts, then lives exactly as long as that request's body (spec 5.10,
  5.11).  A reaper task owned by the app's cleanup context expires locks.
- Every network wait has a deadline: a body read or written must move
  ``min_rate`` × ``io_timeout`` bytes in every ``io_timeout`` window
  (``limits.Pace``: a client trickling bytes is cut after one window);
  ``keeplocked_timeout`` between keeplocked body lines.
- Logs: one line of bounded length per failed or aborted request, and for
  every malformed one (``gate.http_logger``).

Streaming (spec 5.2, 5.9, pitfall 3): downloads are sent chunk by chunk from
the object file with ``X-git-annex-data-length``; on versioned routes the last
byte is held back until the file is checked unchanged (size and mtime), and
left out if it changed.  Uploads stream through ``Incoming`` into
``annex/tmp`` and are renamed under the key only once size and hash verify; a
body cut short stays for resume (``putoffset``), an overlong one is
discarded.  ``Incoming`` holds git-annex's download transfer lock for the
client's uuid: while another transfer of the key holds it (any session, any
process), ``put`` and ``putoffset`` answer ``500 Something went wrong`` as
git-annex does.  ``remove`` of a key locked here or by another process, or
under unexpired retention, is that 500 too, like git-annex (spec 5.5).

Departures from git-annex, on purpose: v5 and later versions (and ``V4``,
``v04``, ``v-1``) answer 404, not ``400 bad version`` (pitfall 4); a negative
offset, timestamp or ``X-git-annex-data-length`` is 400 (git-annex answers an
empty download, a removal, ``stored: false``); a clean shutdown releases held
locks (the ``.rtm`` files go too), a killed server leaves ``.rtm`` retention
behind.  Matched on purpose: a trailing slash, offsets and timestamps of any
size, HTTP/1.0 downloads (sent unchunked, closed at the end).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from aiohttp import HttpVersion11, web

from core.daemon.threads import run_blocking
from core.errors import ContentVerifyError, CoreError, RepoError, TransferBusy
from core.p2p.gateway import cluster_target, local_node_path, open_proxied
from core.p2p.limits import Pace, one_line
from core.p2p.serving import COMMIT_QUIET, ServedRepo, monotonic_seconds
from core.p2phttp import models as m
from core.p2phttp import proxy
from core.p2phttp.auth import Access, AuthPolicy
from core.p2phttp.gate import Gate, default_max_connections, http_logger, listen
from core.p2phttp.proxy import ClusterPool, SessionHost, local_nodes
from core.repo import transfers
from core.repo.key import Key
from core.repo.objects import ContentLocked, write_batch
from core.repo.repository import AnnexRepo, annex_uuid_at

logger = logging.getLogger(__name__)

SEND_CHUNK = 1 << 20
LOCK_SECONDS = 600.0  # spec 5.10
KEEPLOCKED_TIMEOUT = 1200.0  # the git-annex client's Keep-Alive: timeout=1200
IO_TIMEOUT = 60.0  # the window of the pace a transfer must keep
MIN_RATE = 1024  # bytes per second, averaged over each io_timeout window
HEADER_TIMEOUT = 30.0  # to send complete request headers
SOMETHING_WRONG = "Something went wrong"
COMMIT_PAUSE = 0.05  # the committer's shortest sleep (seconds): never a busy loop
R = TypeVar("R")


@dataclass(frozen=True)
class Settings:
    """What ``make_app`` serves and how (the ``p2phttp`` options)."""

    repositories: Sequence[Path] = ()
    directories: Sequence[Path] = ()
    policy: AuthPolicy = field(default_factory=AuthPolicy)
    https: bool = False
    jobs: int = 2
    locked_files: int = 100
    lock_seconds: float = LOCK_SECONDS
    keeplocked_timeout: float = KEEPLOCKED_TIMEOUT
    io_timeout: float = IO_TIMEOUT
    min_rate: int = MIN_RATE
    header_timeout: float = HEADER_TIMEOUT
    max_connections: int | None = None  # None: what the descriptor limit allows
    clock: Callable[[], int] = monotonic_seconds
    proxy_connections: int | None = None  # idle ones kept per cluster; None: ``jobs``
    cluster_jobs: int | None = None  # nodes at once per request; None: all of them

    def pace(self) -> Pace:
        """The pace one transfer must keep, starting now (on the running loop's clock)."""
        now = asyncio.get_running_loop().time()
        return Pace(self.io_timeout, int(self.min_rate * self.io_timeout), now)


# --- repositories ----------------------------------------------------------------


class Served:
    """One repository and its worker slots."""

    def __init__(self, repo: AnnexRepo, jobs: int, clock: Callable[[], int]) -> None:
        self.served = ServedRepo(repo, clock=clock, commit_later=True)  # by ``_commit_settled``
        self.workers = asyncio.Semaphore(jobs)

    @property
    def repo(self) -> AnnexRepo:
        return self.served.repo

    async def run(self, fn: Callable[..., R], *args: object) -> R:
        """``fn(*args)`` in a thread, holding one of the ``-J`` worker slots."""
        async with self.workers:
            return await asyncio.to_thread(fn, *args)


def find_repositories(top: Path) -> list[Path]:
    """git repositories at or below ``top``; symlinks are not followed (spec 3)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        here = Path(dirpath)
        if ".git" in dirnames or ".git" in filenames:
            found.append(here)
            dirnames[:] = [d for d in dirnames if d != ".git"]
        elif {"HEAD", "config"} <= set(filenames) and "objects" in dirnames:
            found.append(here)  # bare
            dirnames[:] = []
        dirnames.sort()
    return found


class Repositories:
    """UUID -> ``Served``; with directories, rescanned on an unknown UUID (spec 2.2)."""

    def __init__(self, settings: Settings, host: SessionHost | None = None) -> None:
        self.settings = settings
        self.host = host or SessionHost()
        self._by_uuid: dict[str, Served] = {}
        self._clusters: dict[str, ClusterPool] = {}
        self._scan_lock = asyncio.Lock()
        self._scans = 0

    def _add(self, path: Path) -> None:
        uuid = annex_uuid_at(path)
        if uuid is None or uuid in self._by_uuid:
            return
        try:
            repo = AnnexRepo.open(path, auto_init=False)
        except RepoError as e:
            logger.info("not serving %s: %s", path, e)
            return
        self._serve(repo)
        logger.info("serving %s (%s)", path, repo.uuid)

    def _serve(self, repo: AnnexRepo) -> None:
        served = Served(repo, self.settings.jobs, self.settings.clock)
        self._by_uuid[repo.uuid] = served
        self._add_proxied(served)

    def _add_proxied(self, gateway: Served) -> None:
        """What ``gateway`` proxies, as its p2pstdio serves it (clusters.md 5.1,
        10): its clusters through ``proxy.ClusterPool``, proxied local
        repositories directly.  Only UUIDs in its own proxy.log entry."""
        repo = gateway.repo
        try:
            proxied = {p.uuid for p in repo.state.proxies().get(repo.uuid, frozenset())}
        except CoreError as e:
            logger.warning("%s: cannot read proxy.log: %s", repo.path, e)
            return
        s = self.settings
        for uuid in sorted(proxied - self._by_uuid.keys() - self._clusters.keys()):
            if cluster_target(repo, uuid) is not None:
                self._clusters[uuid] = ClusterPool(
                    gateway.served, uuid, self.host, keep=s.proxy_connections or s.jobs,
                    node_jobs=s.cluster_jobs, nodes=local_nodes(self.host, self.node_served))  # fmt: skip
                logger.info("serving cluster %s through %s", uuid, repo.path)
                continue
            path = local_node_path(repo, uuid)
            if path is None:
                logger.info("not proxying %s: only clusters and local repositories are", uuid)
                continue
            try:
                node = open_proxied(path, uuid)
            except CoreError as e:  # none there (RepoError), or another one (NotProxied)
                logger.info("not proxying %s at %s: %s", uuid, path, e)
                continue
            self._by_uuid[uuid] = Served(node, s.jobs, s.clock)
            logger.info("proxying %s (%s)", path, uuid)

    def _scan(self) -> None:
        for top in self.settings.directories:
            for path in find_repositories(top):
                self._add(path)

    def node_served(self, path: Path) -> ServedRepo:
        """The repository at ``path`` as served here, opened now if it is not yet
        (a node that was away at start).

        Raises:
            RepoError: no repository there.
        """
        for s in list(self._by_uuid.values()):
            if s.repo.path.resolve() == path.resolve():
                return s.served
        repo = AnnexRepo.open(path, auto_init=False)
        served = self._by_uuid.setdefault(repo.uuid, Served(repo, self.settings.jobs,
                                                            self.settings.clock))  # fmt: skip
        if served.repo is not repo:
            repo.close()
        return served.served

    def open_initial(self) -> None:
        """Open the single repositories and scan the directories (blocking)."""
        for path in self.settings.repositories:
            self._serve(AnnexRepo.open(path, auto_init=False))
        self._scan()

    async def lookup(self, uuid: str) -> Served | ClusterPool:
        """Raises: HttpError 404 when no repository has this UUID."""
        found: Served | ClusterPool | None = self._by_uuid.get(uuid) or self._clusters.get(uuid)
        if found is None and self.settings.directories:
            seen = self._scans
            async with self._scan_lock:
                if self._scans == seen:  # nobody scanned while we waited
                    await asyncio.to_thread(self._scan)
                    self._scans += 1
            found = self._by_uuid.get(uuid) or self._clusters.get(uuid)
        if found is None:
            raise m.HttpError(404)
        return found

    def all(self) -> list[Served]:
        return list(self._by_uuid.values())

    async def aclose(self) -> None:
        """Close the pools, stop their sessions, then close the repositories."""
        for pool in self._clusters.values():
            await pool.aclose()
        self._clusters.clear()
        await self.host.aclose()
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        for s in self._by_uuid.values():
            s.served.flush()
            s.repo.close()
        self._by_uuid.clear()


# --- locks (spec 5.10, 5.11) --------------------------------------------------------


@dataclass
class HeldLock:
    served: Served
    key: Key
    expires: float | None  # monotonic; None while a keeplocked request holds it


class LockTable:
    def __init__(self, limit: int, lifetime: float) -> None:
        self.limit = limit
        self.lifetime = lifetime
        self._locks: dict[str, HeldLock] = {}

    def __len__(self) -> int:
        return len(self._locks)

    async def take(self, served: Served, key: Key) -> str | None:
        """Lock ``key``; the lock id, or None (absent, locked out, table full)."""
        if len(self._locks) >= self.limit:
            return None
        if not await served.run(served.served.lock, key):
            return None
        lock_id = str(uuidlib.uuid4())
        self._locks[lock_id] = HeldLock(served, key, time.monotonic() + self.lifetime)
        return lock_id

    def claim(self, lock_id: str) -> HeldLock | None:
        """The lock for a starting keeplocked: its expiry stops (spec 5.11)."""
        held = self._locks.get(lock_id)
        if held is None or held.expires is None:
            return None
        held.expires = None
        return held

    async def release(self, lock_id: str) -> None:
        held = self._locks.pop(lock_id, None)
        if held is not None:
            await asyncio.to_thread(held.served.served.unlock, held.key)

    async def expire(self, now: float) -> None:
        for lock_id, held in list(self._locks.items()):
            if held.expires is not None and held.expires <= now:
                logger.info("lock %s on %s expired", lock_id, held.key)
                await self.release(lock_id)

    def next_expiry(self) -> float | None:
        return min((h.expires for h in self._locks.values() if h.expires is not None),
                   default=None)  # fmt: skip

    async def release_all(self) -> None:
        for lock_id in list(self._locks):
            await self.release(lock_id)


# --- the application ---------------------------------------------------------------

SETTINGS = web.AppKey("settings", Settings)
REPOS = web.AppKey("repos", Repositories)
LOCKS = web.AppKey("locks", LockTable)
GATE = web.AppKey("gate", Gate)


def make_app(settings: Settings, repos: Repositories | None = None) -> web.Application:
    """The API as an aiohttp application.

    ``repos`` may be given already opened; otherwise the repositories are
    opened on startup.  Raises nothing itself; startup raises ``RepoError``
    when a single repository cannot be opened.
    """
    app = web.Application(client_max_size=1 << 20)
    app[SETTINGS] = settings
    app[REPOS] = repos if repos is not None else Repositories(settings)
    app[LOCKS] = LockTable(settings.locked_files, settings.lock_seconds)
    limit = settings.max_connections or default_max_connections(settings.locked_files)
    app[GATE] = Gate(limit)
    app.router.add_route("*", "/{tail:.*}", handle)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    repos, locks = app[REPOS], app[LOCKS]
    await repos.host.start()
    if not repos.all():
        await asyncio.to_thread(repos.open_initial)
    loop = asyncio.get_running_loop()
    reaper = loop.create_task(_reap(locks), name="p2phttp-lock-reaper")
    committer = loop.create_task(_commit_settled(repos), name="p2phttp-committer")
    try:
        yield
    finally:
        for task in (reaper, committer):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await locks.release_all()
        await repos.aclose()


async def _commit_settled(repos: Repositories) -> None:
    """Commit each served repository's journal once its lines settle, off the
    requests' path (``ServedRepo.commit_later``); ``close`` commits the rest."""
    while True:
        dues = [s.served.commit_due_at() for s in repos.all()]
        await asyncio.sleep(until_next_commit(dues, time.monotonic()))
        now = time.monotonic()
        for s in repos.all():
            due = s.served.commit_due_at()
            if due is not None and due <= now:
                await run_blocking(s.served.commit_settled)


def until_next_commit(dues: Sequence[float | None], now: float) -> float:
    """Seconds the committer sleeps: until the earliest due commit, and at
    most ``COMMIT_QUIET``: a line journaled just after this look is not due
    before then.  An idle server so wakes once a second, not four times."""
    soonest = min((d for d in dues if d is not None), default=now + COMMIT_QUIET)
    return max(COMMIT_PAUSE, min(soonest, now + COMMIT_QUIET) - now)


async def _reap(locks: LockTable) -> None:
    while True:
        nxt = locks.next_expiry()
        delay = 1.0 if nxt is None else min(max(nxt - time.monotonic(), 0.0), 1.0)
        await asyncio.sleep(delay)
        await locks.expire(time.monotonic())


def _json(body: m.Json) -> web.Response:
    return web.Response(body=m.dump(body), headers={"Content-Type": m.JSON_CONTENT_TYPE})


async def handle(request: web.Request) -> web.StreamResponse:
    """Route, authorise and run one API request (spec 5, 6, 7)."""
    gate = request.app[GATE]
    gate.busy(request.transport)  # inside a request: not evicted at the cap
    try:
        return await _handle(request)
    finally:
        gate.idle(request.transport)


async def _handle(request: web.Request) -> web.StreamResponse:
    app = request.app
    try:
        req = m.parse_request(request.method, request.raw_path, request.headers.get)
        served = await app[REPOS].lookup(req.server_uuid)
        access = app[SETTINGS].policy.decide(
            req.action, request.headers.get("Authorization"), app[SETTINGS].https
        )
        if req.op is m.Op.KEEPLOCKED:
            return await _keeplocked(request, req)
        if isinstance(served, ClusterPool):
            return await proxy.handle(request, req, served, app[SETTINGS])
        return await HANDLERS[req.op](request, req, served, access)
    except m.HttpError as e:
        return web.Response(status=e.status, text=e.text or None, headers=e.headers)
    except (ConnectionError, TimeoutError) as e:
        # the client went away or stalled: one line, and the connection ends
        # here (a response started cannot be finished honestly)
        logger.info("%s %s: %s", request.method, one_line(request.path),
                    one_line(e) or type(e).__name__)  # fmt: skip
        _hang_up(request)
        return web.Response(status=500, text=SOMETHING_WRONG)
    except Exception as e:  # noqa: BLE001 - any failure is one request's, answered 500
        logger.error("%s %s failed: %s: %s", request.method, one_line(request.path),
                     type(e).__name__, one_line(e))  # fmt: skip
        return web.Response(status=500, text=SOMETHING_WRONG)


def _hang_up(request: web.Request) -> None:
    """End the connection now: whatever is still written to it fails quietly."""
    if request.transport is not None:
        request.transport.close()


# --- handlers ------------------------------------------------------------------------

Handler = Callable[[web.Request, m.ApiRequest, Served, Access], Awaitable[web.StreamResponse]]


def _key(req: m.ApiRequest) -> Key:
    assert req.key is not None
    return req.key


async def _checkpresent(request: web.Request, req: m.ApiRequest, s: Served,
                        access: Access) -> web.StreamResponse:  # fmt: skip
    return _json(m.present_body(await s.run(s.repo.objects.has, _key(req))))


async def _gettimestamp(request: web.Request, req: m.ApiRequest, s: Served,
                        access: Access) -> web.StreamResponse:  # fmt: skip
    return _json(m.timestamp_body(s.served.clock()))


async def _remove(request: web.Request, req: m.ApiRequest, s: Served,
                  access: Access) -> web.StreamResponse:  # fmt: skip
    key = _key(req)
    try:
        await s.run(s.repo.require_writable)
        removed = await s.run(s.served.remove, key, req.timestamp)
    except ContentLocked as e:  # locked here or elsewhere, or retained
        logger.info("remove %s: %s", key, e)
        raise m.HttpError(500, SOMETHING_WRONG) from e  # as git-annex (spec 5.5)
    except CoreError as e:
        logger.info("remove %s: %s", key, e)
        removed = False
    return _json(m.removed_body(req.api_version, removed))


async def _lockcontent(request: web.Request, req: m.ApiRequest, s: Served,
                       access: Access) -> web.StreamResponse:  # fmt: skip
    lock_id = await request.app[LOCKS].take(s, _key(req))
    return _json(m.locked_body(lock_id))


async def _keeplocked(request: web.Request, req: m.ApiRequest) -> web.StreamResponse:
    """Hold the lock while the request body lasts (spec 5.11)."""
    locks = request.app[LOCKS]
    timeout = request.app[SETTINGS].keeplocked_timeout
    assert req.lock_id is not None
    held = locks.claim(req.lock_id)
    try:
        while True:
            try:
                async with asyncio.timeout(timeout):
                    line = await request.content.readline()
            except (TimeoutError, ConnectionError, ValueError, OSError) as e:
                logger.info("keeplocked %s ends: %s", req.lock_id, e or type(e).__name__)
                break
            except Exception as e:  # noqa: BLE001 - payload errors: the client went away
                logger.info("keeplocked %s ends: %s", req.lock_id, e)
                break
            if not line:
                break
            if _unlock_requested(line):
                break
    finally:
        if held is not None:
            await locks.release(req.lock_id)
    return _json(m.locked_body(None))


def _unlock_requested(line: bytes) -> bool:
    try:
        value = json.loads(line)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("unlock") is True


async def _putoffset(request: web.Request, req: m.ApiRequest, s: Served,
                     access: Access) -> web.StreamResponse:  # fmt: skip
    key = _key(req)
    if await s.run(s.repo.objects.has, key):
        return _json(m.offset_body(req.api_version, None))
    if not key.receivable:  # the PUT that follows is refused unread
        return _json(m.offset_body(req.api_version, 0))
    offset = await s.run(_offset_unless_busy, s, key, req.client_uuid or "")
    return _json(m.offset_body(req.api_version, offset))


def _offset_unless_busy(s: Served, key: Key, client_uuid: str) -> int:
    """The partial file's size, read under the transfer lock.

    Raises:
        HttpError: 500 while another transfer holds the lock, as git-annex's
            p2phttp answers (checked with 10.20261026).
    """
    try:
        with transfers.download(s.repo.gitdir, client_uuid, key):
            return s.repo.objects.incoming(key).offset
    except TransferBusy as e:
        logger.info("putoffset %s: %s", key, e)
        raise m.HttpError(500, SOMETHING_WRONG) from e


async def _put(request: web.Request, req: m.ApiRequest, s: Served,
               access: Access) -> web.StreamResponse:  # fmt: skip
    key = _key(req)
    v = req.api_version
    if await s.run(s.repo.objects.has, key):
        if req.data_present:
            await s.run(s.served.record, key, True)
        return _json(m.stored_body(v, True))
    if req.data_present:
        return _json(m.stored_body(v, False))
    if not key.receivable:  # refused before reading a byte of the body
        logger.info("put %s: %s", key, key.refusal())
        return _json(m.stored_body(v, False))
    try:
        await s.run(s.repo.require_writable)
    except CoreError as e:
        logger.info("put %s: %s", key, e)
        return _json(m.stored_body(v, False))
    return _json(m.stored_body(v, await _receive(request, req, s, key)))


async def _receive(request: web.Request, req: m.ApiRequest, s: Served, key: Key) -> bool:
    """Stream the body into ``Incoming``; True when stored under ``key`` and
    logged (spec 5.9); a line the log could not take gives the content up.

    ``Incoming`` holds the download transfer lock for the client's uuid: a
    concurrent upload of the key (any session or process) gets a 500, as
    git-annex's p2phttp answers (checked with 10.20261026).
    """
    inc = s.repo.objects.incoming(key, req.client_uuid or "")
    pace = request.app[SETTINGS].pace()
    loop = asyncio.get_running_loop()
    length = req.data_length or 0
    try:
        have = await s.run(inc.open)  # the lock first: then the size holds
        offset = req.offset or 0
        if offset > have:
            # git-annex drops its partial copy here too (checked: putoffset says 0 after)
            logger.info("put %s from %d, but only %d bytes are here", key, offset, have)
            await s.run(inc.discard)
            return False
        skip = have - offset
        received = 0
        buf = bytearray()
        batch = write_batch(key.size)
        while True:
            try:
                async with asyncio.timeout_at(pace.deadline()):
                    chunk = await request.content.read(SEND_CHUNK)
                pace.moved(len(chunk), loop.time())
            except TimeoutError:
                logger.info("put %s cut: the client is slower than %d bytes/s", key,
                            request.app[SETTINGS].min_rate)  # fmt: skip
                _hang_up(request)  # no lingering for the rest of a stalled body
                break
            except (ConnectionError, OSError) as e:
                logger.info("put %s cut short: %s", key, e or type(e).__name__)
                break
            except Exception as e:  # noqa: BLE001 - payload errors from a broken body
                logger.info("put %s cut short: %s", key, e)
                break
            if not chunk:
                break
            received += len(chunk)
            if received > length:  # invalid; what came before stays, as git-annex keeps it
                logger.info("put %s: body longer than %d bytes", key, length)
                break
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            buf += chunk
            if len(buf) >= batch:
                await s.run(inc.write, bytes(buf))
                buf.clear()
        if buf:
            await s.run(inc.write, bytes(buf))
        if received != length:  # invalid: keep the partial file for resume
            logger.info("put %s: got %d of %d bytes", key, received, length)
            return False
        await s.run(inc.commit)
        await s.run(s.served.keep, key)  # logged under the transfer lock, as every receiver
        return True
    except TransferBusy as e:
        logger.info("put %s: %s", key, e)
        raise m.HttpError(500, SOMETHING_WRONG) from e
    except (ContentVerifyError, RepoError) as e:
        logger.info("put %s refused: %s", key, e)
        return False
    finally:
        await asyncio.to_thread(inc.close)


async def _download(request: web.Request, req: m.ApiRequest, s: Served,
                    access: Access) -> web.StreamResponse:  # fmt: skip
    """Spec 5.2, 5.3: body length is the validity signal."""
    key = _key(req)
    offset = req.offset or 0
    f, before = await s.run(_open_object, s, key, offset)  # one thread hop: find, open, seek
    try:
        size = before.st_size if before is not None else 0
        length = max(size - offset, 0) if f is not None else 0
        resp = web.StreamResponse(headers={"Content-Type": m.OCTET_STREAM,
                                           m.DATA_LENGTH: str(length)})  # fmt: skip
        if request.version >= HttpVersion11:
            resp.enable_chunked_encoding()
        # else HTTP/1.0 (nginx's default towards backends): no chunks there; the
        # body ends when the connection closes, which keeps "shortened by one
        # byte" (5.3) meaningful
        await resp.prepare(request)
        if request.method == "HEAD" or f is None or not length:
            await resp.write_eof()
            return resp
        pace = request.app[SETTINGS].pace()
        last = await _send(s, resp, f, length, pace, hold_last=req.version is not None)
        if last is not None:  # the plain path never shortens (5.3)
            after = os.fstat(f.fileno())
            assert before is not None
            if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
                await resp.write(last)
            else:
                logger.info("%s changed while being sent; sending one byte less", key)
        await resp.write_eof()
        return resp
    finally:
        if f is not None:
            f.close()  # read-only: nothing to flush, no need for a thread


def _open_object(s: Served, key: Key, offset: int) -> tuple[BinaryIO, os.stat_result] | tuple[None, None]:
    """The object open at ``offset`` (when it has bytes there) and its stat."""
    path = s.repo.objects.find(key)
    if path is None:
        return None, None
    try:
        f = path.open("rb")
    except OSError:
        return None, None
    st = os.fstat(f.fileno())
    if 0 < offset < st.st_size:
        f.seek(offset)
    return f, st


async def _send(s: Served, resp: web.StreamResponse, f: BinaryIO, count: int,
                pace: Pace, *, hold_last: bool = False) -> bytes | None:  # fmt: skip
    """Send ``count`` bytes of ``f``; a reader slower than ``pace`` gets
    TimeoutError.  ``hold_last``: the last byte is read but not sent, and
    returned, for the caller to send once it knows the object did not change
    while it was read (5.3)."""
    loop = asyncio.get_running_loop()
    while count > 0:
        chunk = await s.run(f.read, min(SEND_CHUNK, count))
        if not chunk:
            raise ConnectionError("object shrank while being sent")
        count -= len(chunk)
        held = chunk[-1:] if hold_last and not count else None
        async with asyncio.timeout_at(pace.deadline()):
            await resp.write(memoryview(chunk)[:-1] if held else chunk)
        pace.moved(len(chunk), loop.time())
        if held is not None:
            return held
    return None


HANDLERS: dict[m.Op, Handler] = {
    m.Op.KEY: _download,
    m.Op.CHECKPRESENT: _checkpresent,
    m.Op.REMOVE: _remove,
    m.Op.REMOVE_BEFORE: _remove,
    m.Op.GETTIMESTAMP: _gettimestamp,
    m.Op.PUT: _put,
    m.Op.PUTOFFSET: _putoffset,
    m.Op.LOCKCONTENT: _lockcontent,
}  # fmt: skip


# --- running -----------------------------------------------------------------------------


def ssl_context(certfile: Path, keyfile: Path, chainfiles: Sequence[Path] = ()) -> ssl.SSLContext:
    """A server TLS context; chain certificates are appended to the certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if not chainfiles:
        ctx.load_cert_chain(certfile, keyfile)
        return ctx
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as combined:
        for part in (certfile, *chainfiles):
            combined.write(part.read_bytes().rstrip(b"\n") + b"\n")
        combined.flush()
        ctx.load_cert_chain(combined.name, keyfile)
    return ctx


@dataclass
class RunningServer:
    runner: web.AppRunner
    listening: asyncio.Server
    addresses: list[tuple[str, int]]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    @property
    def gate(self) -> Gate:
        return self.runner.app[GATE]

    async def aclose(self) -> None:
        self.listening.close()
        await self.runner.cleanup()


async def start_server(
    settings: Settings,
    *,
    host: str | None = "127.0.0.1",
    port: int = m.DEFAULT_PORT,
    socket_path: Path | None = None,
    tls: ssl.SSLContext | None = None,
    shutdown_timeout: float = 5.0,
) -> RunningServer:
    """Start serving; ``port=0`` picks a free port (see ``RunningServer.port``).

    Raises:
        RepoError: a repository cannot be opened.
        OSError: the address is in use.
    """
    app = make_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=shutdown_timeout, logger=http_logger,
                           keepalive_timeout=settings.header_timeout)  # fmt: skip
    await runner.setup()
    assert runner.server is not None
    try:
        listening = await listen(app[GATE], runner.server, host=host, port=port,
                                 socket_path=socket_path, tls=tls)  # fmt: skip
    except BaseException:
        await runner.cleanup()
        raise
    addresses = [sock.getsockname()[:2] for sock in listening.sockets
                 if isinstance(sock.getsockname(), tuple)]  # fmt: skip
    return RunningServer(runner, listening, addresses)


__all__ = [
    "GATE", "HEADER_TIMEOUT", "IO_TIMEOUT", "KEEPLOCKED_TIMEOUT", "MIN_RATE", "LOCKS", "LOCK_SECONDS", "REPOS", "SETTINGS",
    "HeldLock", "LockTable", "Repositories", "RunningServer", "Served", "Settings",
    "find_repositories", "handle", "make_app", "ssl_context", "start_server",
]  # fmt: skip
