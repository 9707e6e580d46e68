"""Serving one repository over the P2P protocol (the server side of spec 6).

Theory of operation
-------------------
``ServedRepo`` is what all connections to one repository share: the
``AnnexRepo``, the server mode (spec 7), the timestamp clock (spec 6.4), a
lock serialising git-annex branch writes, and the table of content locks held
for peers.  ``Session`` runs one connection: it pumps a ``Channel`` (see
``runtime``) and performs the local effect of every request the machine hands
it (the package docstring's adapter contract).  Blocking work (files, git)
runs in ``asyncio.to_thread``; network waits carry timeouts.

Rules kept here, each from the spec:

- CHECKPRESENT answers from the object store (6.1).
- LOCKCONTENT takes the shared content lock (``ObjectStore.lock``, which
  excludes sessions of this process too and grants only while the content
  is there) and writes the retention timestamp ``<object>.rtm`` = now +
  600 s before answering SUCCESS; if the timestamp cannot be written the
  lock is refused (6.2, repository-format 2.4).  A clean unlock
  (UNLOCKCONTENT, a rejected line, EOF, any end of the session) releases
  both, the ``.rtm`` only when no other holder remains; a killed server
  leaves the ``.rtm`` to expire.
- REMOVE removes under the exclusive lock (``ObjectStore.remove``): the
  decision "is it locked?" and the removal are one step.  Locked or
  retained content ends the session with ``content is locked`` and no
  reply, as git-annex-shell does (spec 6.3, 10.4, verified).  REMOVE-BEFORE
  removes only while our clock is below the timestamp (6.4).  No numcopies
  check: that is the client's job (6.3).
- GET streams the object from the offset, then VALID, or ``DATA 0`` +
  INVALID when the content is absent (6.7).
- PUT offers ``PUT-FROM <size of annex/tmp/KEY>`` (resume, 6.5) without
  touching anything; git-annex's download transfer lock for the client's
  uuid (``Incoming.open``, ``repo/transfers.py``) is taken at the DATA that
  follows, as git-annex-shell takes it, and the partial file must still
  have the size offered.  The payload is appended and kept only if it
  verifies against the key, whatever VALID/INVALID said: nothing
  unverified is ever stored.  A payload cut short stays in ``annex/tmp``
  for the next PUT.  ``DATA 0`` + INVALID that does not complete the key
  (the agreed abandon; a gateway's offset probe, clusters.md 10) takes no
  lock and writes nothing.  DATA-PRESENT (6.6) succeeds if the content is
  in the store by then.  When another transfer of the key holds the lock
  (any session, any process, git-annex-shell included) the DATA ends the
  session with ``transfer already in progress, or unable to take transfer
  lock`` and no reply, as git-annex-shell does (spec 6.5, verified).
- A PUT's disk work runs in at most three thread hand-offs (the offer; the
  lock at DATA; the last bytes, the check, the rename and the log line at
  the end), plus one per ``objects.write_batch`` of a larger file, and the offset
  probe in one.  Where the channel reads a descriptor itself (p2pstdio on
  a pipe: ``fdread.FdReader``) the whole payload is one more hand-off
  instead: ``Channel.receive_payload`` runs ``Incoming.write_from`` on a
  thread, reading the pipe straight into its reused buffers.
- A successful PUT (or DATA-PRESENT) logs the key present under the served
  UUID, a REMOVE logs it absent, and the git-annex branch is committed, as
  git-annex-shell does (6.5).  The line is in the journal before the reply
  (git-annex reads the journal: every reader sees it at once); the commit
  follows at most once a second in the request's thread, or, in a
  long-running server (``commit_later``: ``annexsync p2phttp``), off the
  request's path once the lines settle (``commit_settled``: after a second
  without a new line, at most five seconds late): no reply waits for a
  commit, and a burst of uploads costs a commit per five seconds, not per
  second.  A PUT whose location line cannot be written (a full disk) gives
  the content up again and answers FAILURE (``AnnexRepo.keep_received``);
  a PUT with no room for the content answers
  PUT-FROM, takes the payload and answers FAILURE: the session goes on.
  In a non-bare repository the unlocked files using the key follow: filled
  after a PUT, back to their pointer after a REMOVE (``files.follow_content``).
- NOTIFYCHANGE and CONNECT are served only when the session is built with
  ``networked_extras`` (the TCP listener, spec 4.2): NOTIFYCHANGE waits on a
  ``notify.RefWatcher`` (6.9), CONNECT hands the rest of the session to
  ``tunnel.serve_connect`` (6.8; the session ends after it).  Elsewhere each
  ends the session with ``SessionAborted`` naming what is not available,
  as git-annex-shell does (message on stderr, exit 1; checked with
  10.20261026).
- A session serving a proxied repository (``proxied``: p2pstdio ``--uuid``,
  a listener token bound to a proxied UUID) answers NOTIFYCHANGE and CONNECT
  with ``ERROR protocol error`` and ends, as git-annex's proxy does
  (clusters.md 5.10); ``gateway.GatewaySession`` (a cluster) does the same.
- ``authenticate`` may hand the connection over instead of naming a
  repository (``Handoff``: a listener token that opens a cluster or a
  proxied repository): the handoff's own session then runs on the same
  channel, sends AUTH-SUCCESS naming what it serves, and this one ends with it.
- ``ended_badly`` says why a session ended on a protocol error or on EOF in
  the middle of a PUT's DATA: p2pstdio then exits 1, as
  git-annex-shell does, so the ssh client sees the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.errors import (
    ContentVerifyError,
    CoreError,
    DiskFull,
    DiskReserveError,
    RemoteProtocolError,
    RepoError,
    TransferBusy,
)
from core.ops.files import follow_content
from core.p2p.events import (
    DONE,
    PAUSED,
    AutoReply,
    ConnectionClosed,
    Event,
    Payload,
    PayloadEnd,
    Rejected,
    Sentinel,
)
from core.p2p.limits import one_line
from core.p2p.machine import Connection
from core.p2p.machine import server as server_machine
from core.p2p.messages import (
    AlreadyHave,
    Auth,
    AuthFailure,
    AuthSuccess,
    Changed,
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
    Service,
    Success,
    Timestamp,
    UnlockContent,
    Valid,
)
from core.p2p.notify import RefWatcher
from core.p2p.runtime import DEFAULT_READ_TIMEOUT, Channel, P2PTimeout
from core.p2p.state import Mode, State
from core.repo.key import Key
from core.repo.lockpool import Held
from core.repo.objects import ContentLocked, Incoming, write_batch
from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)

COMMIT_INTERVAL = 1.0  # seconds between git-annex branch commits while serving
COMMIT_QUIET = 1.0  # ``commit_later``: committed once no line came for this long...
COMMIT_LATEST = 5.0  # ... or this long after the first line the branch lacks

RETENTION_SECONDS = 600  # spec 6.2: a peer's lock is good for 10 minutes
DEFAULT_IDLE_TIMEOUT = 3600.0  # between requests (git-annex keeps sessions open)
_IDLE_STATES = frozenset({State.IDLE, State.START, State.LOCKED, State.GET_RESULT})


def monotonic_seconds() -> int:
    """The server clock of spec 6.4: boot time in whole seconds where we have it."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is not None:
        return int(time.clock_gettime(clock))
    return int(time.monotonic())


def mode_from_env(env: dict[str, str] | None = None) -> Mode:
    """git-annex-shell's mode variables; read-only wins (spec 4.1, 7)."""
    e = os.environ if env is None else env
    if e.get("GIT_ANNEX_SHELL_READONLY"):
        return Mode.READ_ONLY
    if e.get("GIT_ANNEX_SHELL_APPENDONLY"):
        return Mode.APPEND_ONLY
    return Mode.READ_WRITE


class SessionAborted(CoreError):
    """A local failure git-annex-shell answers by ending the session (spec 8, 10.4).

    The client sees EOF instead of a reply; p2pstdio prints the text on
    stderr and exits 1.
    """


CONTENT_LOCKED = "content is locked"  # git-annex-shell's words (spec 10.4)


@dataclass
class _Held:
    count: int
    stack: contextlib.ExitStack
    lock: Held


class ServedRepo:
    """A repository served to any number of sessions in this process."""

    def __init__(
        self,
        repo: AnnexRepo,
        *,
        mode: Mode = Mode.READ_WRITE,
        clock: Callable[[], int] = monotonic_seconds,
        commit_later: bool = False,
    ) -> None:
        """``commit_later``: requests only journal their lines; the owner calls
        ``commit_settled`` when ``commit_due_at`` says (a long-running server)."""
        self.repo = repo
        self.uuid = repo.uuid
        self.mode = mode
        self.clock = clock
        self.commit_later = commit_later
        self._branch_lock = threading.Lock()
        self._dirty = False
        self._dirty_since = 0.0  # the first line the branch lacks, then the last one
        self._changed = 0.0
        self._committed = 0.0
        self._locks_lock = threading.Lock()
        self._held: dict[Key, _Held] = {}
        self._worktree_lock = threading.Lock()  # one index writer per process

    # --- content locks (spec 6.2) -------------------------------------------------

    def lock(self, key: Key) -> bool:
        """Take (or share) the peer lock on ``key``; False if absent or unlockable.

        The retention timestamp is on disk before True is returned (spec 6.2).
        """
        with self._locks_lock:
            held = self._held.get(key)
            if held is not None:
                held.count += 1
                return True
            stack = contextlib.ExitStack()
            try:
                lock = stack.enter_context(self.repo.objects.lock(key))
                self.repo.objects.retain(key, time.time() + RETENTION_SECONDS)
            except (RepoError, OSError) as e:
                logger.info("LOCKCONTENT %s: %s", key, e)
                stack.close()
                return False
            self._held[key] = _Held(1, stack, lock)
            return True

    def unlock(self, key: Key) -> None:
        with self._locks_lock:
            held = self._held.get(key)
            if held is None:
                return
            held.count -= 1
            if held.count:
                return
            del self._held[key]
            try:
                if held.lock.upgrade():  # nobody else relies on the timestamp
                    self.repo.objects.release_retention(key)
            finally:
                held.stack.close()

    def locked_here(self, key: Key) -> bool:
        with self._locks_lock:
            return key in self._held

    # --- removal (spec 6.3, 6.4) ----------------------------------------------

    def remove(self, key: Key, before: int | None = None) -> bool:
        """Remove ``key``'s content; True on success or when it was absent.

        Raises:
            ContentLocked: a session or process holds its lock, or an
                unexpired retention timestamp stands (the callers answer as
                git-annex does: p2p ends the session, p2phttp says 500).
        """
        if before is not None and not self.clock() < before:
            return False
        with self._branch_lock:
            try:
                removed = self.repo.remove_content(key)
            except ContentLocked:
                raise
            except (RepoError, OSError) as e:
                logger.info("REMOVE %s: %s", key, e)
                return False
            if removed:
                self._journaled()
        if removed:
            self._follow(key, False)
        return True

    def _follow(self, key: Key, present: bool) -> None:
        """Unlocked files in a non-bare served repository follow the content,
        as git-annex's do (issue 10: a PUT fills them, a REMOVE empties them)."""
        with self._worktree_lock:
            follow_content(self.repo, key, present)

    # --- location log ---------------------------------------------------------

    def record(self, key: Key, present: bool, uuids: tuple[str, ...] | None = None) -> None:
        """Log the served UUID (or ``uuids``: a gateway's nodes, clusters.md
        5.13) as having (or not) ``key`` (spec 6.5).

        The line goes to the journal at once (readers, git-annex's included,
        see it there); the branch is committed at most once a second while
        content keeps arriving (with ``commit_later``: by ``commit_settled``,
        off the request's path), and by ``flush`` when serving ends.
        """
        with self._branch_lock:
            try:
                with self.repo.branch.transaction():  # one journal write for all the lines
                    for uuid in (self.uuid,) if uuids is None else uuids:
                        self.repo.state.set_location(key, uuid, present)
            except CoreError as e:  # content moved anyway; the log is advisory
                logger.warning("could not record %s in the location log: %s", key, e)
                return
            self._journaled()

    def keep(self, key: Key) -> None:
        """Log content a PUT brought, or give it up (``AnnexRepo.keep_received``).

        Raises:
            RepoError: the line could not be written (a full disk); the
                content was removed again, the sender still has it.
        """
        with self._branch_lock:
            self.repo.keep_received(key)
            self._journaled()
        self._follow(key, True)

    def _journaled(self) -> None:
        """A line went to the journal (branch lock held): commit now if due,
        or leave it to ``commit_settled`` (``commit_later``)."""
        now = time.monotonic()
        if not self._dirty:
            self._dirty, self._dirty_since = True, now
        self._changed = now
        if not self.commit_later and now - self._committed >= COMMIT_INTERVAL:
            self._commit()

    def commit_due_at(self) -> float | None:
        """When (``time.monotonic``) ``commit_settled`` commits: ``COMMIT_QUIET``
        after the last line, at most ``COMMIT_LATEST`` after the first; None
        when the branch has every line."""
        if not self._dirty:
            return None
        return min(self._changed + COMMIT_QUIET, self._dirty_since + COMMIT_LATEST)

    def commit_settled(self) -> None:
        """Commit the journal if ``commit_due_at`` has come (blocking)."""
        with self._branch_lock:
            due = self.commit_due_at()
            if due is not None and time.monotonic() >= due:
                self._commit()

    def flush(self) -> None:
        """Commit what ``record`` left in the journal."""
        with self._branch_lock:
            if self._dirty:
                self._commit()

    def _commit(self) -> None:
        """A branch lock held by someone else leaves the lines in the journal
        (``commit_or_keep``): the content is stored, so the upload succeeded."""
        try:
            if self.repo.branch.commit_or_keep():
                self._dirty = False
        except (CoreError, OSError) as e:  # the journal keeps the lines for the next commit
            logger.warning("could not commit the location log: %s", e)
        self._committed = time.monotonic()
        if self._dirty:  # tried again after a pause, not at every turn
            self._dirty_since = self._changed = self._committed


@dataclass
class _Put:
    key: Key
    incoming: Incoming
    offset: int  # PUT-FROM: the partial file's size when offered
    failed: str | None = None
    locked: bool = False  # ``incoming.open`` was called: closing it needs a thread
    due: int = 0  # payload bytes announced by DATA
    received: int = 0
    extra: list[str] = field(default_factory=list)
    pending: list[bytes] = field(default_factory=list)  # received, not yet written
    pending_bytes: int = 0


@dataclass(frozen=True)
class Handoff:
    """What an AUTH opened when it is not a repository served here as it is (a
    cluster, a proxied repository): ``serve(channel, client_uuid)`` runs the
    rest of the connection and answers AUTH-SUCCESS itself."""

    serve: Callable[[Channel, str], Awaitable[None]]


# (client uuid, token) -> the repository this token opens, a handoff, or None (refused)
Authenticator = Callable[[str, str], Awaitable["ServedRepo | Handoff | None"]]


class Session:
    """One P2P connection served from a ``ServedRepo``.

    Args:
        served: the repository and its shared state.
        channel: the stream and the server ``Connection``.
        authenticate: for networked sessions (spec 4.2), checks AUTH tokens
            and names the repository the session serves from then on.
        idle_timeout: longest wait for the next request (and for a change
            after NOTIFYCHANGE).
        auth_timeout: with ``authenticate``, the time a peer has from the
            start of the session to authenticate, however it trickles bytes.
        networked_extras: serve NOTIFYCHANGE and CONNECT (networked only).
        own_refs: maps the client's uuid (from AUTH) to the only ref prefix
            its push may write through CONNECT (a paired device's per-sender
            refs, xmpp-sync C.3; ``tunnel.serve_connect``).
        after_connect: awaited with the service and git's exit code after a
            CONNECT (the paired-device server merges what a push brought).
        client_uuid: the peer's repository (p2pstdio's argument), named in
            the transfer lock of a PUT; AUTH replaces it on networked sessions.
        proxied: the repository is served as a proxied one (clusters.md
            5.10): NOTIFYCHANGE and CONNECT are protocol errors.
    """

    def __init__(
        self,
        served: ServedRepo,
        channel: Channel,
        *,
        authenticate: Authenticator | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        auth_timeout: float | None = None,
        networked_extras: bool = False,
        client_uuid: str = "",
        own_refs: Callable[[str], str] | None = None,
        after_connect: Callable[[Service, int], Awaitable[None]] | None = None,
        proxied: bool = False,
    ) -> None:
        self.served = served
        self.client_uuid = client_uuid
        self.ch = channel
        self.authenticate = authenticate
        self.idle_timeout = idle_timeout
        self.auth_timeout = auth_timeout
        self._auth_deadline: float | None = None
        self.networked_extras = networked_extras
        self.own_refs = own_refs
        self.after_connect = after_connect
        self.proxied = proxied
        self._locked: Key | None = None
        self._put: _Put | None = None
        self._watcher: RefWatcher | None = None
        self._over = False  # CONNECT ran or NOTIFYCHANGE gave up: end the session
        self.ended_badly: str | None = None  # a protocol error or EOF mid-request

    async def run(self, *, greet: bool) -> None:
        """Serve until the client leaves; always releases locks and closes.

        ``greet``: p2pstdio sends AUTH-SUCCESS first (spec 4.1).
        Raises:
            P2PTimeout, ConnectionLost: the transport failed.
        """
        if self.authenticate is not None and self.auth_timeout is not None:
            self._auth_deadline = asyncio.get_running_loop().time() + self.auth_timeout
        try:
            if greet:
                await self.ch.send(AuthSuccess(self.served.uuid))
            await self._loop()
        except RemoteProtocolError as e:
            logger.info("%s: %s", self.ch.peer, one_line(e))
            self.ended_badly = one_line(e)
            if e.error_line:
                with contextlib.suppress(CoreError, OSError):
                    await self.ch.send_raw(e.error_line)
        finally:
            await self._abandon()
            await self.ch.aclose()

    async def _loop(self) -> None:
        conn = self.ch.conn
        while not self._over:
            idle = conn.state in _IDLE_STATES
            ev = await self.ch.next_event(self._wait_limit(idle))
            if ev is DONE:
                return
            if ev is PAUSED or isinstance(ev, Sentinel):
                raise RuntimeError(f"request left unanswered in state {conn.state}")
            await self._handle(ev)

    def _wait_limit(self, idle: bool) -> float | None:
        """How long to wait for the peer; before AUTH, never past the deadline.

        Raises:
            P2PTimeout: the peer did not authenticate in ``auth_timeout``.
        """
        limit = self.idle_timeout if idle else self.ch.read_timeout
        if self._auth_deadline is None:
            return limit if idle else None
        left = self._auth_deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise P2PTimeout("waiting for AUTH", self.auth_timeout or 0.0)
        return min(limit, left)

    async def _handle(self, ev: Event) -> None:
        if isinstance(ev, AutoReply):
            await self.ch.send(ev.reply)
            if isinstance(ev, Rejected) and ev.abandoned:
                await self._abandon()
        elif isinstance(ev, Payload):
            await self._payload(ev.data)
        elif isinstance(ev, PayloadEnd):
            await self._put_done(ev.valid)
        elif isinstance(ev, ConnectionClosed):
            if ev.cut_short and self._put is not None:  # DATA cut short
                self.ended_badly = "the client closed the connection in the middle of DATA"
            await self._abandon()
        elif isinstance(ev, Message):
            await self._request(ev)

    async def _request(self, msg: Message) -> None:  # noqa: C901 - one branch per request
        s = self.served
        if isinstance(msg, Auth):
            found = None if self.authenticate is None else await self.authenticate(
                msg.uuid, msg.token)  # fmt: skip
            if isinstance(found, Handoff):  # its session answers AUTH-SUCCESS, then ours ends
                self._auth_deadline, self._over = None, True
                await found.serve(self.ch, msg.uuid)
                return
            if found is not None:
                self.served, self._auth_deadline = found, None
                self.client_uuid = msg.uuid  # named in the transfer lock of a PUT
            await self.ch.send(AuthFailure() if found is None else AuthSuccess(found.uuid))
        elif isinstance(msg, CheckPresent):
            has = await asyncio.to_thread(s.repo.objects.has, msg.key)
            await self.ch.send(Success() if has else Failure())
        elif isinstance(msg, LockContent):
            ok = await asyncio.to_thread(s.lock, msg.key)
            self._locked = msg.key if ok else None
            await self.ch.send(Success() if ok else Failure())
        elif isinstance(msg, UnlockContent):
            await self._unlock()
        elif isinstance(msg, (Remove, RemoveBefore)):
            before = msg.timestamp if isinstance(msg, RemoveBefore) else None
            try:
                ok = await asyncio.to_thread(s.remove, msg.key, before)
            except ContentLocked as e:
                logger.info("REMOVE %s: %s", msg.key, e)
                raise SessionAborted(CONTENT_LOCKED) from e
            await self.ch.send(Success() if ok else Failure())
        elif isinstance(msg, GetTimestamp):
            await self.ch.send(Timestamp(s.clock()))
        elif isinstance(msg, Get):
            await self._get(msg)
        elif isinstance(msg, Put):
            await self._put_offer(msg)
        elif isinstance(msg, Data):
            await self._put_length(msg.length)
            await self._receive_direct()
        elif isinstance(msg, DataPresent):
            await self._data_present()
        elif isinstance(msg, Error):  # client abandoned a PUT or GET (spec 6.5, 6.7, 8)
            await self._abandon()
        elif isinstance(msg, NotifyChange):
            await self._notify_change()
        elif isinstance(msg, Connect):
            await self._connect(msg)
        # Bypass, and the client's SUCCESS/FAILURE after GET, need nothing.

    # --- NOTIFYCHANGE and CONNECT (spec 6.8, 6.9; networked only) ----------------

    async def _notify_change(self) -> None:
        if self.proxied:
            await self._refuse_proxied()
            return
        if not self.networked_extras:
            raise SessionAborted("change notification not available")
        if self._watcher is None:
            self._watcher = RefWatcher(self.served.repo.gitdir)
        changed = await self._watcher.wait_changed(self.idle_timeout, self.ch.reader.at_eof)
        if changed is None:  # the peer left, or nothing changed for too long
            self._over = True
            return
        await self.ch.send(Changed(changed))

    async def _connect(self, msg: Connect) -> None:
        from core.p2p.tunnel import serve_connect  # rare: not imported by every session's start

        if self.proxied:
            await self._refuse_proxied()
            return
        if not self.networked_extras:
            raise SessionAborted("relaying to git not supported on this connection")
        self._over = True  # spec 6.8: CONNECT is the last request of a session
        code = await serve_connect(self.ch, msg.service, self.served.repo.gitdir,
                                   idle_timeout=self.idle_timeout,
                                   own_refs=self.own_refs and self.own_refs(self.client_uuid))
        logger.info("%s: %s exited %d", self.ch.peer, msg.service.value, code)
        if self.after_connect is not None:
            await self.after_connect(msg.service, code)

    async def _refuse_proxied(self) -> None:
        """NOTIFYCHANGE or CONNECT to a proxied repository or a cluster: what
        git-annex's proxy answers, and the session ends (clusters.md 5.10)."""
        await self.ch.send(Error("protocol error"))
        self.ended_badly, self._over = "protocol error", True

    # --- GET (spec 6.7) ---------------------------------------------------------

    async def _get(self, msg: Get) -> None:
        path = await asyncio.to_thread(self.served.repo.objects.find, msg.key)
        f = None
        if path is not None:
            with contextlib.suppress(OSError):
                f = await asyncio.to_thread(path.open, "rb")
        if f is None:
            await self.ch.send(Data(0), Invalid())
            return
        try:
            before = os.fstat(f.fileno())
            left = max(before.st_size - msg.offset, 0)
            await self.ch.send(Data(left))
            await self.ch.send_file(f, msg.offset, left)  # shrank: a cut (spec 2.3)
            after = os.fstat(f.fileno())
            same = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
            await self.ch.send(Valid() if same else Invalid())
        finally:
            f.close()

    # --- PUT (spec 6.5, 6.6) ----------------------------------------------------

    async def _put_offer(self, msg: Put) -> None:
        try:  # a key we cannot verify is refused here, before PUT-FROM asks for data
            offer = await asyncio.to_thread(_offer, self.served.repo, msg.key, self.client_uuid)
        except (CoreError, OSError) as e:
            await self.ch.send(Error(_one_line(str(e))))
            return
        if offer is None:
            await self.ch.send(AlreadyHave())
            return
        # No room: PUT-FROM all the same, take the payload and answer FAILURE,
        # so the client's other files still go through this session
        # (git-annex-shell 10.20261026 exits here instead, which costs the
        # client a new connection).
        self._put = offer
        await self.ch.send(PutFrom(offer.offset))

    async def _put_length(self, length: int) -> None:
        """DATA: the lock is taken now, unless the reply will be FAILURE anyway
        (a size that does not make the key's: ``DATA 0`` + INVALID, the probe)."""
        put = self._put
        if put is None:
            return
        put.due = length
        size = put.key.size
        if put.failed is None and size is not None and put.offset + length != size:
            put.failed = f"DATA {length} from offset {put.offset} does not make {size} bytes"
        if put.failed is not None:
            return
        put.locked = True
        try:
            start = await asyncio.to_thread(put.incoming.open, put.offset)
        except TransferBusy as e:
            logger.info("PUT %s: %s", put.key, TransferBusy.MESSAGE)
            raise SessionAborted(TransferBusy.MESSAGE) from e
        except (CoreError, OSError) as e:  # no room any more; an unwritable annex/tmp
            put.failed = str(e)
            return
        if start != put.offset:  # another writer cut the partial file after our offer
            put.failed = f"annex/tmp holds {start} bytes where PUT-FROM offered {put.offset}"

    async def _receive_direct(self) -> None:
        """The payload straight from the descriptor into the temporary file
        where the channel can (``Channel.receive_payload``); else, or for
        what is left after a failure, ``_payload`` takes it chunk by chunk."""
        put = self._put
        if put is None or put.failed is not None or not put.locked:
            return
        try:
            if await self.ch.receive_payload(put.incoming.write_from):
                put.received = put.incoming.written - put.offset
        except (ContentVerifyError, DiskFull) as e:  # more bytes than the key's size; no room
            put.failed = str(e)

    async def _payload(self, data: bytes) -> None:
        put = self._put
        if put is None or put.failed is not None:
            return  # consume and ignore: the reply will be FAILURE
        put.pending.append(data)  # joined once per batch: no bytearray regrowth
        put.pending_bytes += len(data)
        put.received += len(data)
        # one thread hand-off per batch; the last one goes with the check at the end
        if put.pending_bytes >= write_batch(put.key.size) and put.received < put.due:
            await asyncio.to_thread(_write_pending, put)

    async def _put_done(self, valid: bool | None) -> None:
        put, self._put = self._put, None
        if put is None:
            return
        if put.locked:
            await asyncio.to_thread(_finish_put, self.served, put)  # one thread hop
        else:  # refused at DATA: nothing was opened or written
            put.incoming.close()
        if put.failed is not None:
            logger.info("PUT %s refused (%s): %s", put.key, valid, put.failed)
        await self.ch.send(Success() if put.failed is None else Failure())

    async def _data_present(self) -> None:
        put, self._put = self._put, None
        if put is None:
            return
        has = await asyncio.to_thread(_content_present, self.served, put)
        await self.ch.send(Success() if has else Failure())

    # --- ending transactions ------------------------------------------------------

    async def _unlock(self) -> None:
        key, self._locked = self._locked, None
        if key is not None:
            await asyncio.to_thread(self.served.unlock, key)

    async def _abandon(self) -> None:
        """End whatever transaction is open; a partial PUT stays for resume.

        Runs in ``finally`` paths, so each release is reached even when a wait
        before it is cancelled: a transfer lock left held would refuse every
        later PUT of the key until the process ends.
        """
        put, self._put = self._put, None
        try:
            await self._unlock()
        finally:
            if put is not None and put.locked:  # what arrived is kept for resume
                await asyncio.to_thread(_keep_partial, put)
            elif put is not None:
                put.incoming.close()


def _offer(repo: AnnexRepo, key: Key, source: str) -> _Put | None:
    """PUT: None when the content is here; else the transfer to offer, from
    the partial file's size (no lock yet: ``Session._put_length`` takes it).

    Raises:
        CoreError: a key we cannot verify; a repository we do not write.
    """
    if repo.objects.has(key):
        return None
    inc = repo.objects.incoming(key, source)
    repo.require_writable()
    put = _Put(key, inc, inc.offset)
    if key.size is not None:
        try:
            repo.objects.check_reserve(max(key.size - put.offset, 0))
        except (DiskReserveError, DiskFull) as e:
            put.failed = str(e)
    return put


def _write_pending(put: _Put) -> None:
    """Append what arrived (on a thread); a failure marks the PUT failed."""
    if not put.pending or put.failed is not None:
        return
    data = b"".join(put.pending)
    put.pending.clear()
    put.pending_bytes = 0
    try:
        put.incoming.write(data)
    except (ContentVerifyError, DiskFull) as e:  # more bytes than the key's size; no room
        put.failed = str(e)


def _finish_put(served: ServedRepo, put: _Put) -> None:
    """The end of a PUT whose lock was taken (on a thread): the last bytes, then
    keep it only if it verifies (whatever VALID/INVALID said: spec 6.5 allows
    trusting VALID, but nothing unverified is kept here), or give up what this
    PUT wrote; the lock is released in every case."""
    try:
        _write_pending(put)
        if put.failed is None:
            put.incoming.commit()  # verified before it is kept
            served.keep(put.key)
        elif put.incoming.written > put.offset:
            put.incoming.discard()
    except RepoError as e:  # did not verify; no room; could not be recorded
        put.failed = str(e)
    finally:
        put.incoming.close()


def _keep_partial(put: _Put) -> None:
    """An abandoned PUT: what arrived stays for resume; the lock is released."""
    try:
        _write_pending(put)
    finally:
        put.incoming.close()


def _content_present(served: ServedRepo, put: _Put) -> bool:
    """DATA-PRESENT (6.6): the content is in the store now (logged if so)."""
    put.incoming.close()
    if not served.repo.objects.has(put.key):
        return False
    served.record(put.key, True)
    return True


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def serve_channel(
    served: ServedRepo,
    channel: Channel,
    *,
    greet: bool = True,
    authenticate: Authenticator | None = None,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> None:
    """Serve one connection to the end (see ``Session``)."""
    session = Session(served, channel, authenticate=authenticate, idle_timeout=idle_timeout)
    await session.run(greet=greet)


def new_server_connection(served: ServedRepo, *, networked: bool = False) -> Connection:
    return server_machine(networked=networked, mode=served.mode)


__all__ = [
    "CONTENT_LOCKED", "DEFAULT_IDLE_TIMEOUT", "DEFAULT_READ_TIMEOUT", "RETENTION_SECONDS",
    "Authenticator", "Handoff", "ServedRepo", "Session", "SessionAborted", "mode_from_env", "monotonic_seconds", "new_server_connection",
    "serve_channel",
]  # fmt: skip
